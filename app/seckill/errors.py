from app.errors import AppError


class SoldOut(AppError):
    status = 409
    code = "sold_out"
    title = "Sold out"


class LimitExceeded(AppError):
    status = 409
    code = "limit_exceeded"
    title = "Per-user limit reached"


class NotStarted(AppError):
    status = 409
    code = "not_started"
    title = "The sale has not started"


class Ended(AppError):
    status = 409
    code = "ended"
    title = "The sale has ended"


class Paused(AppError):
    status = 409
    code = "paused"
    title = "The sale is paused"
