from fastapi import APIRouter

from app.auth import CurrentUser
from app.db import SessionDep
from app.errors import Unauthorized, ValidationFailed, problem_responses
from app.members import invites_service as service
from app.members.invites_errors import AlreadyInvited, InviteNotFound, NotANewUser
from app.members.invites_schemas import InviteCodeRead, InviteCodeText, InviteRead

router = APIRouter(prefix="/api/v1", tags=["invites"])


@router.post("/me/invite-code", responses=problem_responses(Unauthorized))
async def my_invite_code(session: SessionDep, user: CurrentUser) -> InviteCodeRead:
    """Your invite code: the same every time. When someone who accepts it pays their first
    order, you and they each get one reward coupon."""
    return InviteCodeRead(code=await service.invite_code(session=session, user=user))


@router.post(
    "/invites/{code}/accept",
    responses=problem_responses(
        Unauthorized, InviteNotFound, ValidationFailed, NotANewUser, AlreadyInvited
    ),
)
async def accept_invite(code: InviteCodeText, session: SessionDep, user: CurrentUser) -> InviteRead:
    """Accept another user's invite code, before your first paid order (403
    `audience_mismatch` after it). Your own code: 422 `validation_error`. One invite per
    user: another code after this one is 409 `invalid_state`; this code again answers
    the invite as it stands."""
    invite = await service.accept(session=session, user=user, code=code)
    return InviteRead.model_validate(invite)
