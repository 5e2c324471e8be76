"""The dashboard in a real browser (Debian's headless Chromium driven by Playwright)
against a served app during a small crowd: the numbers move, a low-stock warning shows,
a control works; a screenshot is saved (to docs/ with UPDATE_SCREENSHOTS=1)."""

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright

from app.auth import mint_token
from app.config import Settings
from tests.live.crowd import Crowd
from tests.support.factories import Auth, create_event, item_spec
from tests.support.waiting import eventually

CHROMIUM = os.environ.get("SECKILL_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"
# Long enough for the page to connect and show numbers on a busy machine.
SHORT_TOKEN_SECONDS = 10


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(
            f"no Chromium at {CHROMIUM}: install Debian's `chromium` "
            "(apt-get install -y chromium) or set SECKILL_CHROMIUM"
        )
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        yield launched
        await launched.close()


async def number(page: Page, testid: str) -> int:
    text = await page.get_by_test_id(testid).text_content() or ""
    digits = re.sub(r"[^0-9]", "", text)
    return int(digits) if digits else -1


@pytest.mark.slow
async def test_dashboard_shows_a_live_sale_and_its_controls_work(
    browser: Browser, http_base_url: str, client: httpx.AsyncClient, auth: Auth, tmp_path: Path
) -> None:
    received = await client.post(
        "/api/v1/admin/skus",
        json={"sku": "PHONE-X", "name": "Phone X", "on_hand": 500},
        headers=auth.admin(),
    )
    assert received.status_code == 201, received.text
    event = await create_event(
        client,
        auth,
        name="10:00 phones",
        items=[
            item_spec(sku="PHONE-X", name="Phone X", stock=400, per_user_limit=2),
            item_spec(sku="BUDS", name="Earbuds", stock=1000, per_user_limit=1),
        ],
    )
    by_sku = {i.sku: i for i in event.items}
    phone, buds = by_sku["PHONE-X"], by_sku["BUDS"]
    threshold = await client.patch(
        f"/api/v1/admin/items/{buds.id}",
        json={"low_stock_threshold": 990},
        headers=auth.admin(),
    )
    assert threshold.status_code == 200
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    dialogs: list[str] = []

    async def accept(dialog: object) -> None:
        dialogs.append(dialog.message)  # type: ignore[attr-defined]
        await dialog.accept()  # type: ignore[attr-defined]

    page.on("dialog", accept)
    await page.goto(f"{http_base_url}/dashboard?event={event.id}")
    await page.fill("#token", auth.admin()["Authorization"].removeprefix("Bearer "))
    await page.click("#connect button")

    async def page_shows(testid: str, at_least: int) -> bool:
        return await number(page, testid) >= at_least

    await eventually(lambda: page_shows("participants", 0))
    assert await number(page, "accepted-units") == 0

    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=http_base_url, timeout=60) as shoppers:
        crowd = Crowd(shoppers, auth, [phone.id, buds.id], users=200, concurrency=10)
        buying = asyncio.create_task(crowd.run_until(stop))
        try:
            # The numbers move while the crowd buys.
            await eventually(lambda: page_shows("accepted-units", 1))
            first = await number(page, "accepted-units")
            await eventually(lambda: page_shows("accepted-units", first + 20))
            await eventually(lambda: page_shows("participants", 50))
            await page.get_by_test_id("low-stock").first.wait_for()

            # A control: add stock to the phone, confirmed in a dialog.
            row = page.locator(f'tr[data-item="{phone.id}"]')
            await row.locator("input.add_stock").fill("25")
            await row.locator("button.apply").click()
            result = page.get_by_test_id("result")

            async def done() -> bool:
                text = await result.text_content() or ""
                assert "error" not in (await result.get_attribute("class") or ""), text
                return text.startswith(f"done: Change item #{phone.id}")

            await eventually(done)

            async def allocated_shown() -> bool:
                text = await row.locator("td.stock").text_content() or ""
                return text.endswith("/ 425")

            await eventually(allocated_shown)
        finally:
            stop.set()
            await buying

    assert dialogs == [f"Change item #{phone.id}: add_stock = 25?"]
    item = (await client.get(f"/api/v1/items/{phone.id}")).json()
    assert item["stock"] == 425
    shot = tmp_path / "dashboard.png"
    await page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copy(shot, DOCS / "dashboard.png")


@pytest.mark.slow
@pytest.mark.parametrize(
    "settings_overrides", [{"jwt_leeway_seconds": 0, "stats_stream_interval_seconds": 0.2}]
)
async def test_dashboard_asks_for_a_new_token_when_its_stream_ends_with_the_token(
    browser: Browser,
    http_base_url: str,
    client: httpx.AsyncClient,
    auth: Auth,
    settings: Settings,
) -> None:
    event = await create_event(client, auth)
    token = mint_token(settings, user_id="ops", admin=True, ttl_seconds=SHORT_TOKEN_SECONDS)
    page = await browser.new_page()
    await page.goto(f"{http_base_url}/dashboard?event={event.id}")
    await page.fill("#token", token)
    await page.click("#connect button")

    async def numbers_shown() -> bool:
        return await number(page, "participants") >= 0

    await eventually(numbers_shown)

    async def link_says(text: str) -> bool:
        return await page.locator("#link").text_content() == text

    # The server ends the stream when the token expires; the page's reconnect is refused
    # and it stops, asking for a new token, instead of retrying for ever.
    await eventually(lambda: link_says("token expired"))
    assert "new operator token" in (await page.get_by_test_id("result").text_content() or "")
