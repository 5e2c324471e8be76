from app.errors import AppError, NotFound


class InsufficientStock(AppError):
    status = 409
    code = "insufficient_stock"
    title = "Not enough stock available"


class SkuExists(AppError):
    status = 409
    code = "already_exists"
    title = "The SKU already exists"


class SkuNotFound(NotFound):
    title = "No such SKU"
