from fastapi import APIRouter

from app.auth import CurrentUser
from app.db import SessionDep
from app.errors import Unauthorized, problem_responses
from app.members import points_service as service
from app.members.points_schemas import PointsRead
from app.pagination import PageDep

router = APIRouter(prefix="/api/v1/me", tags=["points"])


@router.get("/points", responses=problem_responses(Unauthorized))
async def my_points(session: SessionDep, user: CurrentUser, page: PageDep) -> PointsRead:
    """Your points balance and its entries, newest first (paginated): one point per whole
    currency unit of each paid order (members' orders times the member multiplier), taken
    back when the order is refunded."""
    return await service.my_points(
        session=session, user_id=user.id, limit=page.limit, offset=page.offset
    )
