from app.errors import AppError


class JobNotFound(AppError):
    status = 404
    code = "not_found"
    title = "No such job"
