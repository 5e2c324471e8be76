from app.errors import AppError


class InvalidSignature(AppError):
    """A payment notification whose signature does not match the shared secret."""

    status = 401
    code = "invalid_signature"
    title = "Invalid notification signature"


class AmountMismatch(AppError):
    """A notification for another amount than the order's: nothing is recorded."""

    status = 409
    code = "amount_mismatch"
    title = "The paid amount does not match the order"
