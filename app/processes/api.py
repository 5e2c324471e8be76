"""The API process: create_app(), whose lifespan builds the services (app/processes/services.py)
and warms Redis up before the process sells."""

import asyncio
import contextlib
import copy
import functools
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp
from swagger_ui_bundle import swagger_ui_path

from app.access.draw_router import router as draws_router
from app.access.gate_router import public as access_challenge
from app.access.queue_front import ThinQueueRoute
from app.access.queue_router import router as queue_router
from app.access.shop import router as shop_router
from app.audit_log.router import router as audit_log_router
from app.config import Settings, get_settings
from app.container import Container, get_container
from app.coupons import service as coupons
from app.coupons.router import admin as coupons_admin
from app.coupons.router import public as coupons_public
from app.db import get_session, get_session_of
from app.errors import (
    AppError,
    Recovering,
    Unavailable,
    document_validation_problems,
    install_error_handlers,
    problem_responses,
)
from app.events import service as events
from app.events.router import admin as events_admin
from app.events.router import admin_items as events_admin_items
from app.events.router import public as events_public
from app.flows import freshness
from app.inventory.router import router as inventory_router
from app.jobs.router import admin as jobs_admin
from app.live.dashboard import router as dashboard_router
from app.live.router import admin as live_admin
from app.live.router import lotteries as live_lotteries
from app.live.router import public as live_public
from app.lottery.front import ThinDrawRoute
from app.lottery.router import admin as lottery_admin
from app.lottery.router import public as lottery_public
from app.members.invites_router import router as invites_router
from app.members.points_router import router as points_router
from app.middleware import ADMIN_PREFIX, Protection
from app.orders.router import admin as orders_admin
from app.orders.router import router as orders_router
from app.orders.router import shipments as orders_shipments
from app.outages import install_outage_handlers
from app.payments.reconciliation_router import router as reconciliation_admin
from app.payments.router import orders as payments_orders
from app.payments.router import orders_admin as payments_orders_admin
from app.payments.router import router as payments_router
from app.planning.router import admin as campaigns_admin
from app.planning.router import public as campaigns_public
from app.processes.ops import router as ops_router
from app.processes.services import build_services, tune_garbage_collector
from app.promotions.router import admin as promotions_admin
from app.promotions.router import public as promotions_public
from app.reminders.router import admin as reminders_admin
from app.reminders.router import router as reminders_router
from app.reports.router import campaigns as campaign_reports_router
from app.reports.router import lotteries as lottery_reports_router
from app.reports.router import router as reports_router
from app.returns.router import admin as returns_admin
from app.returns.router import orders as returns_orders
from app.seckill.router import router as seckill_router
from app.seckill.thin_route import ThinPurchaseRoute

logger = logging.getLogger(__name__)

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details; `code` is stable and machine-readable.",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


DOCS_ASSETS = "/docs/assets"


def serve_docs(app: FastAPI) -> None:
    """/docs: Swagger UI from the swagger-ui-bundle package, so the page works where no
    CDN can be reached."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)


class SeckillApp(FastAPI):
    """FastAPI, with `front_layers`: ASGI layers in front of its whole middleware stack
    (error middleware included), first innermost. A layer there answers below the
    framework the requests it is made for (the thin purchase route) and passes on the
    rest; it renders its own answers and errors as the app would."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.front_layers: list[Callable[[ASGIApp], ASGIApp]] = []

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        for layer in self.front_layers:
            stack = layer(stack)
        return stack


ROUTERS = (
    # Routes are matched in order: the purchase route first, it takes the crowd.
    seckill_router,
    ops_router,
    events_public,
    events_admin,
    events_admin_items,
    access_challenge,
    audit_log_router,
    live_admin,
    live_public,
    live_lotteries,
    dashboard_router,
    reports_router,
    campaign_reports_router,
    lottery_reports_router,
    inventory_router,
    orders_router,
    orders_admin,
    orders_shipments,
    payments_orders,
    payments_orders_admin,
    returns_orders,
    returns_admin,
    payments_router,
    reconciliation_admin,
    coupons_public,
    coupons_admin,
    promotions_public,
    promotions_admin,
    points_router,
    invites_router,
    jobs_admin,
    campaigns_admin,
    campaigns_public,
    draws_router,
    reminders_router,
    reminders_admin,
    queue_router,
    shop_router,
    lottery_public,
    lottery_admin,
)


async def warm_up(services: Container) -> None:
    """Before this process sells: every sale and coupon in Redis (lost ones frozen), and a
    Redis older than Postgres (an old snapshot) found and rebuilt. The worker's check
    goes on every second."""
    async with services.sessionmaker() as session:
        loaded = await events.warm_up(session=session, services=services)
        coupons_loaded = await coupons.warm_up(session=session, services=services)
    if loaded:
        logger.info("warm-up: loaded %d sale item(s) into Redis from Postgres", loaded)
    if coupons_loaded:
        logger.info("warm-up: loaded %d coupon(s) into Redis from Postgres", coupons_loaded)
    try:
        await freshness.check_once(services)
    except Exception:
        logger.warning("start-up hot-store check failed; the worker's check goes on", exc_info=True)


def lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def running(app: FastAPI) -> AsyncIterator[None]:
        async with build_services(settings) as services:
            await warm_up(services)
            follower = asyncio.create_task(
                services.sold_out.follow(services.redis, services.keys.stock_back_channel)
            )
            counter = asyncio.create_task(
                services.refused_tries.run(services.redis, settings.stats_flush_seconds)
            )
            app.state.container = services
            app.state.watch = services.watch
            tune_garbage_collector(settings)
            try:
                yield
            finally:
                gc.unfreeze()  # what was frozen may be garbage once the app is gone
                for task in (follower, counter):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    return running


class BodyOverLimit(AppError):
    """Documents the refusal app/middleware.py's Protection answers itself."""

    status = 413
    code = "payload_too_large"
    title = "Payload too large"


# They answer an outage themselves: /readyz with its own 503 `not_ready`, /metrics
# without its Redis gauges.
ANSWERS_OUTAGES_ITSELF = frozenset({"/readyz", "/metrics"})
RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 1},
}


def _reaches_backends(dependant: Dependant) -> bool:
    """Whether the endpoint takes the request's session or the container (Redis, the
    sessionmaker): a Redis or Postgres outage then answers 503 (app/outages.py)."""
    return any(
        sub.call in (get_session, get_session_of, get_container) or _reaches_backends(sub)
        for sub in dependant.dependencies
    )


def _add_response(operation: dict[str, Any], status: int, documented: dict[str, Any]) -> None:
    """Declare `documented` on the operation; an answer already declared for that status
    (a route's own 503) keeps its codes and gets the new ones after them."""
    responses: dict[str, Any] = operation.setdefault("responses", {})
    present = responses.get(str(status))
    if present is None:
        responses[str(status)] = copy.deepcopy(documented)
    else:
        known = present.get("description", "")
        added = [d for d in documented["description"].split("; ") if d.split(":")[0] not in known]
        present["description"] = "; ".join([known, *added]) if known else "; ".join(added)
        present.setdefault("headers", {}).update(documented.get("headers", {}))
    operation["responses"] = dict(sorted(responses.items(), key=lambda kv: kv[0]))


def document_limits_and_outages(schema: dict[str, Any], app: FastAPI, settings: Settings) -> None:
    """What the layers around the routes answer, on the operations they answer it for:
    413 `payload_too_large` on every operation that takes a body (app/middleware.py), 503
    `recovering` (Redis) and `unavailable` (Postgres) with Retry-After on every operation
    that reaches Redis or Postgres (app/outages.py)."""
    too_large = problem_responses(BodyOverLimit)[413]
    outage = problem_responses(Recovering, Unavailable)[503]
    outage["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
    paths = schema.get("paths", {})
    for route in iter_route_contexts(app.routes):
        original = route.original_route
        if not isinstance(original, APIRoute) or not original.include_in_schema:
            continue
        path = route.path_format or original.path_format
        for method in sorted(route.methods or original.methods or ()):
            operation = paths.get(path, {}).get(method.lower())
            if operation is None:
                continue
            if "requestBody" in operation:
                admin = path.startswith(ADMIN_PREFIX)
                limit = settings.max_admin_body_bytes if admin else settings.max_body_bytes
                variable = "SECKILL_MAX_ADMIN_BODY_BYTES" if admin else "SECKILL_MAX_BODY_BYTES"
                _add_response(
                    operation,
                    413,
                    {
                        **too_large,
                        "description": f"{too_large['description']} (over {limit} bytes, "
                        f"`{variable}`; refused before it is read, nothing changed)",
                    },
                )
            if path not in ANSWERS_OUTAGES_ITSELF and _reaches_backends(original.dependant):
                _add_response(operation, 503, outage)


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """The OpenAPI document, with the Problem schema every error answer refers to and the
    answers of the layers around the routes (body limits, outages)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = (
                PROBLEM_SCHEMA
            )
            document_validation_problems(schema)
            document_limits_and_outages(schema, app, settings)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(settings: Settings | None = None) -> SeckillApp:
    settings = settings or get_settings()
    app = SeckillApp(
        title="seckill",
        version="0.1.0",
        description="High-concurrency flash-sale backend. See docs/CONTRACT.md.",
        lifespan=lifespan(settings),
        # /docs is served below from a local copy of Swagger UI (no CDN); no ReDoc.
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.serves_docs else None,
        # A redirect to the slash-less path would be built from the client's Host header.
        redirect_slashes=False,
        # Metrics are Prometheus's (app/metrics.py); FastAPI's OpenTelemetry hooks would
        # look for a provider on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    # Inside Protection (body limits, security headers), in front of the routes.
    if settings.thin_queue_route:
        app.front_layers.append(ThinQueueRoute)
    if settings.thin_lottery_route:
        app.front_layers.append(ThinDrawRoute)
    # Outermost: the purchase, the most frequent request, is recognised first.
    if settings.thin_purchase_route:
        app.front_layers.append(
            functools.partial(ThinPurchaseRoute, max_body_bytes=settings.max_body_bytes)
        )
    app.add_middleware(
        Protection,
        max_body_bytes=settings.max_body_bytes,
        max_admin_body_bytes=settings.max_admin_body_bytes,
    )
    install_outage_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    if settings.serves_docs:
        serve_docs(app)
    install_openapi(app, settings)
    return app
