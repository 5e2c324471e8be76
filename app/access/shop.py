"""GET /shop/{event_id}: the reference storefront for one event (docs/CONTRACT.md, "Fair
access for hyped sales"). Plain HTML, CSS and JS shipped inside the package and served by
the app itself, like the operators' dashboard: nothing from a CDN, no build step. The
page talks only to the public API (time, the event, its challenge, queue or draw,
purchase, orders, pay), so what it does is what any storefront does; static/shop.js is
the part to copy."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from app.db import SessionDep
from app.errors import problem_responses
from app.events import service as events
from app.events.errors import EventNotFound
from app.ids import EventId
from app.middleware import PAGE_POLICY

STATIC = Path(__file__).resolve().parent / "static"
# The page's own files, under a path no event id matches.
ASSETS = "/shop/assets"

router = APIRouter(tags=["storefront"])


@router.get(f"{ASSETS}/shop.js", include_in_schema=False)
async def script() -> FileResponse:
    return FileResponse(STATIC / "shop.js", media_type="text/javascript")


@router.get(f"{ASSETS}/shop.css", include_in_schema=False)
async def stylesheet() -> FileResponse:
    return FileResponse(STATIC / "shop.css", media_type="text/css")


@router.get(
    "/shop/{event_id}", response_class=HTMLResponse, responses=problem_responses(EventNotFound)
)
async def shop(event_id: EventId, session: SessionDep) -> HTMLResponse:
    """The event's storefront page: paste a shopper token (or open `?token=JWT`), watch
    the countdown to the start by the server's clock and the items' remaining stock; by
    the event's access, buy (open), join the waiting room and see your position (queue),
    or register and see the draw (draw), solving the proof of work in the page when the
    event asks for one; then buy with your pass, follow the order and pay. An event that
    does not exist (or that shoppers cannot see yet) answers 404 `not_found`, as the API
    does, rather than a page."""
    event = await events.get_event_row(session=session, event_id=event_id)
    if not events.shown_to_shoppers(event):
        raise EventNotFound(f"No event {event_id}.")
    return HTMLResponse(
        (STATIC / "shop.html").read_text(), headers={"Content-Security-Policy": PAGE_POLICY}
    )
