"""The API process: create_app(), whose lifespan builds the services (app/processes/services.py)
and warms Redis up before the process sells."""

import asyncio
import contextlib
import functools
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp
from swagger_ui_bundle import swagger_ui_path

from app.audit_log.router import router as audit_log_router
from app.config import Settings, get_settings
from app.container import Container
from app.coupons import service as coupons
from app.coupons.router import admin as coupons_admin
from app.coupons.router import public as coupons_public
from app.errors import document_validation_problems, install_error_handlers
from app.events import service as events
from app.events.router import admin as events_admin
from app.events.router import admin_items as events_admin_items
from app.events.router import public as events_public
from app.flows import freshness
from app.inventory.router import router as inventory_router
from app.jobs.router import admin as jobs_admin
from app.live.dashboard import router as dashboard_router
from app.live.router import admin as live_admin
from app.live.router import public as live_public
from app.middleware import Protection
from app.orders.router import admin as orders_admin
from app.orders.router import router as orders_router
from app.outages import install_outage_handlers
from app.payments.router import orders as payments_orders
from app.payments.router import orders_admin as payments_orders_admin
from app.payments.router import router as payments_router
from app.processes.ops import router as ops_router
from app.processes.services import build_services, tune_garbage_collector
from app.reports.router import router as reports_router
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
    audit_log_router,
    live_admin,
    live_public,
    dashboard_router,
    reports_router,
    inventory_router,
    orders_router,
    orders_admin,
    payments_orders,
    payments_orders_admin,
    payments_router,
    coupons_public,
    coupons_admin,
    jobs_admin,
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


def install_openapi(app: FastAPI) -> None:
    """The OpenAPI document, with the Problem schema every error answer refers to."""

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
    install_openapi(app)
    return app
