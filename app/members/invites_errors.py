from app.errors import AppError, InvalidState, NotFound


class InviteNotFound(NotFound):
    title = "No such invite code"


class AlreadyInvited(InvalidState):
    """The caller accepted another user's code before: one invite per invitee."""

    title = "Already invited by someone else"


class NotANewUser(AppError):
    """Only users with no paid order may accept an invite (the same audience as
    `new_users` coupons, hence the same code)."""

    status = 403
    code = "audience_mismatch"
    title = "Invites are for users with no paid order"
