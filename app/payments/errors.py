from app.errors import AppError, NotFound


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


class UnsupportedSettlementType(AppError):
    """A reconciliation's body that is not a CSV settlement file."""

    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class ReconciliationNotFound(NotFound):
    title = "No such reconciliation"
