from app.errors import AppError


class InsufficientStock(AppError):
    status = 409
    code = "insufficient_stock"
    title = "Not enough stock available"


class SkuExists(AppError):
    status = 409
    code = "already_exists"
    title = "The SKU already exists"


class SkuNotFound(AppError):
    status = 404
    code = "not_found"
    title = "No such SKU"
