"""The bench-only app: the real app from create_app(settings), plus baselines beside the
real purchase endpoint, with the same auth, body and response shapes:

- bare: a pure ASGI answer in front of everything (no token, no framework): what uvicorn
  itself serves here, the ceiling of any Python endpoint on this server;
- no-op: the framework's route with the purchase's parameters (token, body, header),
  answering 202 with a fixed body;
- naive: takes stock with a Postgres row lock (bench/naive.py), one transaction each;
- naive redis: the plain FastAPI + redis-py design (bench/naive_redis.py): a framework
  route, PyJWT's decode on every request, one EVALSHA of purchase.lua each;
- framework: the real purchase through FastAPI's route (as every purchase went before
  the thin route);
- unlimited: the real purchase on the thin route with the rate limiter off (its cost, in
  the same run).

Served by uvicorn as a factory: `uvicorn bench.apps:app_from_env --factory`, settings
from the SECKILL_ environment like the real service.
"""

import contextlib
import dataclasses
import functools
from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
import jwt
from fastapi import APIRouter, Depends, FastAPI, Header, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from app.auth import CurrentUser, User
from app.config import Settings
from app.container import ContainerDep
from app.errors import SoldOut, Unauthorized, ValidationFailed, problem_responses
from app.ids import IdempotencyKey, ItemId
from app.processes.api import SeckillApp, create_app
from app.seckill.router import purchase as real_purchase
from app.seckill.schemas import PurchaseAccepted, PurchaseCreate
from app.seckill.thin_route import ThinPurchaseRoute
from app.store.order_ids import new_order_id
from bench.naive import NaiveStore
from bench.naive_redis import NaiveRedisStore

PURCHASE_PATH = "/api/v1/items/{item_id}/purchase"
QUEUE_PATH = "/api/v1/events/{event_id}/queue"
LOTTERY_PATH = "/api/v1/lotteries/{lottery_id}/draw"
BARE_PATH = "/bench/bare/items/{item_id}/purchase"
FRAMEWORK_PATH = "/bench/framework/items/{item_id}/purchase"
NAIVE_PATH = "/bench/naive/items/{item_id}/purchase"
NAIVE_REDIS_PATH = "/bench/naive-redis/items/{item_id}/purchase"
NOOP_PATH = "/bench/noop/items/{item_id}/purchase"
UNLIMITED_PREFIX = "/bench/unlimited/items/"
UNLIMITED_PATH = UNLIMITED_PREFIX + "{item_id}/purchase"
NOOP_ORDER_ID = "00000000000000000000000000-0"
BARE_BODY = b'{"order_id":"%s","status":"queued"}' % NOOP_ORDER_ID.encode()
BARE_HEADERS = [
    (b"content-length", str(len(BARE_BODY)).encode()),
    (b"content-type", b"application/json"),
]

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
    NAIVE_REDIS_PATH,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(Unauthorized, SoldOut, ValidationFailed),
)
async def naive_redis_purchase(
    item_id: ItemId,
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(HTTPBearer())],
    request: Request,
    body: PurchaseCreate | None = None,
    idempotency_key: IdempotencyHeader = None,
) -> PurchaseAccepted:
    settings: Settings = request.app.state.container.settings
    try:
        claims = jwt.decode(
            credentials.credentials,
            settings.jwt_secret.get_secret_value(),
            algorithms=["HS256"],
            options={"require": ["sub", "exp"]},
        )
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"The token is invalid: {exc}.") from exc
    user = User(id=str(claims["sub"]), member=claims.get("member") is True)
    store: NaiveRedisStore = request.app.state.naive_redis
    quantity = body.quantity if body else 1
    order_id = await store.purchase(
        item_id=item_id, user=user, quantity=quantity, idempotency_key=idempotency_key
    )
    if order_id is None:
        raise SoldOut(f"Item {item_id} refused {quantity}.")
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
    FRAMEWORK_PATH,
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(Unauthorized, SoldOut, ValidationFailed),
)
async def framework_purchase(
    request: Request,
    item_id: ItemId,
    user: CurrentUser,
    services: ContainerDep,
    body: PurchaseCreate | None = None,
    idempotency_key: IdempotencyHeader = None,
) -> PurchaseAccepted:
    """The real endpoint's own function and dependencies, through the framework."""
    return await real_purchase(
        request=request,
        item_id=item_id,
        user=user,
        services=services,
        body=body,
        idempotency_key=idempotency_key,
    )


class BareNoop:
    """Answers BARE_PATH's POSTs with a fixed 202 after reading the body, and passes
    everything else on: the cost of uvicorn and one ASGI call, nothing more."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.prefix, self.suffix = BARE_PATH.split("{item_id}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (
            path.startswith(self.prefix) and path.endswith(self.suffix)
        ):
            await self.app(scope, receive, send)
            return
        while (await receive()).get("more_body", False):
            pass
        await send({"type": "http.response.start", "status": 202, "headers": BARE_HEADERS})
        await send({"type": "http.response.body", "body": BARE_BODY})


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


def create_bench_app(settings: Settings) -> SeckillApp:
    app = create_app(settings)
    _mount_before_purchase(app)
    # In front of the whole stack: the unlimited baseline beside the real thin route,
    # the bare answer outermost.
    app.front_layers += [
        functools.partial(
            ThinPurchaseRoute,
            max_body_bytes=settings.max_body_bytes,
            prefix=UNLIMITED_PREFIX,
            container="unlimited",
        ),
        BareNoop,
    ]
    real_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        assert settings.database_url is not None, "the bench always sets SECKILL_DATABASE_URL"
        assert settings.redis_url is not None, "the bench always sets SECKILL_REDIS_URL"
        # As many connections as the real app's engine may open.
        size = settings.db_pool_size + settings.db_max_overflow
        async with (
            real_lifespan(app),
            asyncpg.create_pool(settings.database_url, min_size=size, max_size=size) as pool,
            Redis.from_url(settings.redis_url, decode_responses=True) as redis,
        ):
            app.state.naive = NaiveStore(pool)
            app.state.naive_redis = NaiveRedisStore(redis, settings.redis_key_prefix)
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


def app_from_env() -> SeckillApp:
    return create_bench_app(Settings())
