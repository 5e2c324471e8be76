from fastapi import APIRouter, status

from app.auth import AdminUser
from app.db import SessionDep
from app.errors import Forbidden, Unauthorized, problem_responses
from app.inventory import service
from app.inventory.errors import InsufficientStock, SkuExists, SkuNotFound
from app.inventory.schemas import (
    SkuCode,
    SkuCreate,
    SkuRead,
    SkuUpdate,
    StockAdjustmentCreate,
    StockMovementRead,
)
from app.pagination import PageDep

router = APIRouter(prefix="/api/v1/admin/skus", tags=["inventory (admin)"])
AUTH_PROBLEMS = (Unauthorized, Forbidden)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(*AUTH_PROBLEMS, SkuExists),
)
async def create_sku(data: SkuCreate, session: SessionDep, _: AdminUser) -> SkuRead:
    sku = await service.create_sku(session=session, data=data)
    return SkuRead.model_validate(sku)


@router.get("", responses=problem_responses(*AUTH_PROBLEMS))
async def list_skus(session: SessionDep, _: AdminUser, page: PageDep) -> list[SkuRead]:
    skus = await service.list_skus(session=session, limit=page.limit, offset=page.offset)
    return [SkuRead.model_validate(s) for s in skus]


@router.get("/{sku}", responses=problem_responses(*AUTH_PROBLEMS, SkuNotFound))
async def get_sku(sku: SkuCode, session: SessionDep, _: AdminUser) -> SkuRead:
    return SkuRead.model_validate(await service.get_sku(session=session, sku=sku))


@router.patch("/{sku}", responses=problem_responses(*AUTH_PROBLEMS, SkuNotFound))
async def update_sku(sku: SkuCode, data: SkuUpdate, session: SessionDep, _: AdminUser) -> SkuRead:
    """Set the SKU's regular `price` (needed for checkout) and/or `category` (coupon
    scopes)."""
    return SkuRead.model_validate(await service.update_sku(session=session, sku=sku, data=data))


@router.post(
    "/{sku}/adjustments",
    responses=problem_responses(*AUTH_PROBLEMS, SkuNotFound, InsufficientStock),
)
async def adjust_stock(
    sku: SkuCode, data: StockAdjustmentCreate, session: SessionDep, _: AdminUser
) -> SkuRead:
    """Add (goods in) or remove (shrinkage, recount) on-hand units; never below zero."""
    adjusted = await service.adjust_stock(session=session, sku=sku, data=data)
    return SkuRead.model_validate(adjusted)


@router.get("/{sku}/ledger", responses=problem_responses(*AUTH_PROBLEMS, SkuNotFound))
async def list_movements(
    sku: SkuCode, session: SessionDep, _: AdminUser, page: PageDep
) -> list[StockMovementRead]:
    """The SKU's stock movements, newest first."""
    rows = await service.list_movements(
        session=session, sku=sku, limit=page.limit, offset=page.offset
    )
    return [StockMovementRead.model_validate(r) for r in rows]
