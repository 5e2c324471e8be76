"""The bench-only app: the real app from create_app(settings), plus baselines mounted
beside the real purchase endpoint, with the same auth, body and response shapes:

- naive: takes stock with a Postgres row lock (bench/naive.py), one transaction each;
- no-op: verifies the token and parses the body, then answers 202 with a fixed body;
- unlimited: the real purchase with the rate limiter off (its cost, in the same run).

Served by uvicorn as a factory: `uvicorn bench.apps:app_from_env --factory`, settings
from the SECKILL_ environment like the real service.
"""

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import APIRouter, FastAPI, Header, Request, status
from starlette.routing import Match

from app.auth import CurrentUser
from app.config import Settings
from app.container import ContainerDep
from app.errors import SoldOut, Unauthorized, ValidationFailed, problem_responses
from app.ids import IdempotencyKey, ItemId
from app.main import create_app
from app.seckill.router import purchase as real_purchase
from app.seckill.schemas import PurchaseAccepted, PurchaseCreate
from app.store.order_ids import new_order_id
from bench.naive import NaiveStore

PURCHASE_PATH = "/api/v1/items/{item_id}/purchase"
NAIVE_PATH = "/bench/naive/items/{item_id}/purchase"
NOOP_PATH = "/bench/noop/items/{item_id}/purchase"
UNLIMITED_PATH = "/bench/unlimited/items/{item_id}/purchase"
NOOP_ORDER_ID = "00000000000000000000000000-0"

router = APIRouter(tags=["bench"])

# Both baselines take the same parameters as the real endpoint (the Idempotency-Key is
# parsed and ignored), so the framework does the same work for all three.
IdempotencyHeader = Annotated[IdempotencyKey | None, Header(alias="Idempotency-Key")]


@router.post(
    NAIVE_PATH,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(Unauthorized, SoldOut, ValidationFailed),
)
async def naive_purchase(
    item_id: ItemId,
    user: CurrentUser,
    request: Request,
    body: PurchaseCreate | None = None,
    idempotency_key: IdempotencyHeader = None,
) -> PurchaseAccepted:
    store: NaiveStore = request.app.state.naive
    quantity = body.quantity if body else 1
    order_id = new_order_id(item_id)
    taken = await store.purchase(
        order_id=order_id, item_id=item_id, user_id=user.id, quantity=quantity
    )
    if not taken:
        raise SoldOut(f"Item {item_id} has no stock left for {quantity}.")
    return PurchaseAccepted(order_id=order_id)


@router.post(
    NOOP_PATH,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(Unauthorized, ValidationFailed),
)
async def noop_purchase(
    item_id: ItemId,
    user: CurrentUser,
    body: PurchaseCreate | None = None,
    idempotency_key: IdempotencyHeader = None,
) -> PurchaseAccepted:
    return PurchaseAccepted(order_id=NOOP_ORDER_ID)


@router.post(
    UNLIMITED_PATH,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(Unauthorized, SoldOut, ValidationFailed),
)
async def unlimited_purchase(
    request: Request,
    item_id: ItemId,
    user: CurrentUser,
    services: ContainerDep,
    body: PurchaseCreate | None = None,
    idempotency_key: IdempotencyHeader = None,
) -> PurchaseAccepted:
    """The real endpoint's own function and dependencies, given the container whose
    settings turn the limits off: the difference from the real route is the limiter."""
    return await real_purchase(
        request=request,
        item_id=item_id,
        user=user,
        services=request.app.state.unlimited,
        body=body,
        idempotency_key=idempotency_key,
    )


def _mount_before_purchase(app: FastAPI) -> None:
    """Mount the baselines just before the real purchase route: routing is a linear scan,
    so all three then pay (almost) the same for it; the real one one miss more."""
    mounted = len(app.router.routes)
    app.include_router(router)
    ours = app.router.routes[mounted:]
    del app.router.routes[mounted:]
    scope = {"type": "http", "method": "POST", "path": PURCHASE_PATH.format(item_id=1)}
    position = next(
        i for i, route in enumerate(app.router.routes) if route.matches(scope)[0] is Match.FULL
    )
    app.router.routes[position:position] = ours


def create_bench_app(settings: Settings) -> FastAPI:
    app = create_app(settings)
    _mount_before_purchase(app)
    real_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert settings.database_url is not None, "the bench always sets SECKILL_DATABASE_URL"
        # As many connections as the real app's engine may open.
        size = settings.db_pool_size + settings.db_max_overflow
        async with (
            real_lifespan(app),
            asyncpg.create_pool(settings.database_url, min_size=size, max_size=size) as pool,
        ):
            app.state.naive = NaiveStore(pool)
            # The same services (Redis, scripts, sold-out marks) with the limits off.
            services = app.state.container
            app.state.unlimited = dataclasses.replace(
                services,
                settings=services.settings.model_copy(
                    update={"rate_limit_per_user": None, "rate_limit_per_address": None}
                ),
            )
            yield

    app.router.lifespan_context = lifespan
    return app


def app_from_env() -> FastAPI:
    return create_bench_app(Settings())
