from app.errors import InvalidState, NotFound, Unauthorized


class OrderNotFound(NotFound):
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


# What a change of an order's status may answer: 409 invalid_state covers a still-queued
# order too (with Retry-After: try again shortly).
CHANGE_PROBLEMS = (Unauthorized, OrderNotFound, InvalidState)
