from app.errors import InvalidState, NotFound


class ReturnNotFound(NotFound):
    title = "Return not found"


class ReturnRefused(InvalidState):
    """The order cannot be returned now: not paid or shipped, past the return window, or
    a return of it is already waiting for a decision."""

    title = "The order cannot be returned"


class ReturnDecided(InvalidState):
    """Approving or rejecting a return that is no longer `requested`."""

    title = "The return was decided already"
