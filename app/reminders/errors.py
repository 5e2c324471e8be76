from app.errors import InvalidState


class SaleStarted(InvalidState):
    """Subscribing to a sale that is already live: there is nothing left to remind of."""

    title = "The sale has started"
