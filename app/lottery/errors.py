from app.errors import Ended, InvalidState, LimitExceeded, NotFound, NotStarted


class LotteryNotFound(NotFound):
    title = "No such lottery"


class PrizeNotFound(NotFound):
    title = "No such won prize"


class AlreadyCheckedIn(InvalidState):
    """A second check-in the same day (409 `invalid_state`)."""

    title = "Already checked in today"


class LotteryNotStarted(NotStarted):
    title = "The lottery has not started"


class LotteryEnded(Ended):
    title = "The lottery has ended"


class DrawsUsedUp(LimitExceeded):
    title = "No draws left today"
