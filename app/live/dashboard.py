"""GET /dashboard: the operators' live page. Plain HTML, CSS and JS shipped inside the
package and served by the app itself: nothing from a CDN, no build step."""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from app.middleware import PAGE_POLICY

STATIC = Path(__file__).resolve().parent / "static"

router = APIRouter(tags=["live sale (admin)"])


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard() -> HTMLResponse:
    """The operators' live page: type an operator token, choose an event, and watch its
    numbers, a chart and low-stock warnings update by themselves (from the stats
    stream); pause, resume, extend or end the sale, and change items' stock, limit,
    price and low-stock threshold, each after a confirmation. Type a campaign id (or
    open `?campaign=ID`) to see its phase now, progress to its targets and its channels'
    orders, GMV, cost and ROI (its report, re-read every 15 s)."""
    return HTMLResponse(
        (STATIC / "dashboard.html").read_text(), headers={"Content-Security-Policy": PAGE_POLICY}
    )


@router.get("/dashboard/dashboard.js", include_in_schema=False)
async def script() -> FileResponse:
    return FileResponse(STATIC / "dashboard.js", media_type="text/javascript")


@router.get("/dashboard/dashboard.css", include_in_schema=False)
async def stylesheet() -> FileResponse:
    return FileResponse(STATIC / "dashboard.css", media_type="text/css")
