from app.errors import NotFound


class DrawNotFound(NotFound):
    """The event does not exist, is not shown to shoppers, or is not a draw."""

    title = "No draw for this event"


class RegistrationNotFound(NotFound):
    title = "Not registered for this draw"
