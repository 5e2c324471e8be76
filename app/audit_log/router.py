from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.audit_log import service
from app.audit_log.schemas import OperatorActionRead
from app.auth import AdminUser
from app.db import SessionDep
from app.errors import Forbidden, Unauthorized, ValidationFailed, problem_responses
from app.ids import MAX_ID
from app.pagination import NEXT_CURSOR_HEADER, CursorPageDep

router = APIRouter(prefix="/api/v1/admin", tags=["audit log (admin)"])


def _cursor(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdecimal() or not 1 <= int(value) <= MAX_ID:
        raise ValidationFailed(f"cursor {value!r} is not one this endpoint gave.", field="cursor")
    return int(value)


@router.get("/audit-log", responses=problem_responses(Unauthorized, Forbidden, ValidationFailed))
async def audit_log(
    session: SessionDep,
    _: AdminUser,
    page: CursorPageDep,
    response: Response,
    event_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[OperatorActionRead]:
    """Every operator change (event creation, pause/resume, stock, limit, price, end time,
    cancellations and refunds, ...), newest first, with who made it and the values before
    and after. More pages: send the `X-Next-Cursor` header back as `cursor`."""
    found = await service.list_actions(
        session=session, event_id=event_id, cursor=_cursor(page.cursor), limit=page.limit
    )
    if found.next_cursor is not None:
        response.headers[NEXT_CURSOR_HEADER] = found.next_cursor
    return [OperatorActionRead.model_validate(a) for a in found.actions]
