from app.errors import AppError


class OrderNotFound(AppError):
    status = 404
    code = "not_found"
    title = "No such order"
