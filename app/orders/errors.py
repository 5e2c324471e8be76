from app.errors import AppError, InvalidState


class OrderNotFound(AppError):
    status = 404
    code = "not_found"
    title = "No such order"


class OrderStillQueued(InvalidState):
    """The order is accepted but not in Postgres yet: it can be acted on in a moment."""

    RETRY_AFTER_SECONDS = 1

    def __init__(self, order_id: str) -> None:
        super().__init__(
            f"Order {order_id!r} is still queued (accepted, not stored yet); "
            f"retry in {self.RETRY_AFTER_SECONDS}s.",
            headers={"Retry-After": str(self.RETRY_AFTER_SECONDS)},
        )


class WrongOrderState(InvalidState):
    """The order's status does not allow this change (or another change won the race)."""

    def __init__(self, order_id: str, status: str, action: str, allowed: str) -> None:
        super().__init__(
            f"Order {order_id!r} is {status}; only {allowed} orders can be {action}.",
            extra={"order_status": status},
        )
