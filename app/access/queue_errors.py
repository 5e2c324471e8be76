from app.errors import InvalidState, NotFound


class NotAQueue(InvalidState):
    """The event's access is not a waiting room (open, or a draw)."""

    title = "This event has no waiting room"


class NotInQueue(NotFound):
    title = "You hold no place in this queue"
