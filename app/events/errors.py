from app.errors import AppError


class EventNotFound(AppError):
    status = 404
    code = "not_found"
    title = "No such event"


class ItemNotFound(AppError):
    status = 404
    code = "not_found"
    title = "No such item"
