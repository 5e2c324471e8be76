"""The dashboard in a real browser (Debian's headless Chromium driven by Playwright)
against a served app during a small crowd: the numbers move, a low-stock warning shows,
a control works; a screenshot is saved (to docs/ with UPDATE_SCREENSHOTS=1). And a
campaign's view: its phase now, its targets' completion and its channels."""

import asyncio
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page

from app.auth import mint_token
from app.config import Settings
from app.container import Container
from tests.live.crowd import Crowd
from tests.reports.campaign_data import DAY, HOUR, Orders, Phases, add_campaign, double_eleven
from tests.support.factories import Auth, create_event, item_spec
from tests.support.waiting import eventually

DOCS = Path(__file__).resolve().parents[2] / "docs"
# Long enough for the page to connect and show numbers on a busy machine.
SHORT_TOKEN_SECONDS = 10


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
    # The reminders' tile: nobody reserved one for this live sale.
    waiting = await page.get_by_test_id("reminders-waiting").text_content() or ""
    assert waiting.startswith("0 waiting for "), waiting
    delivery = await page.get_by_test_id("reminders-delivery").text_content()
    assert delivery == "0 sent · 0 pending · 0 failed"
    # The members' tiles: nothing paid yet, so no points and no invite rewarded.
    assert await number(page, "member-units") == 0
    assert await number(page, "points-net") == 0
    assert await number(page, "invites-rewarded") == 0
    # The shipping tile: a live sale has no order past a ship-by.
    assert await number(page, "overdue-shipments") == 0
    issued = await page.get_by_test_id("points-issued-detail").text_content()
    assert issued == "0 earned · 0 taken back"
    # The returns' tile: no payment yet, so no refund rate, and no return.
    assert await page.get_by_test_id("refund-rate").text_content() == "–"
    assert await page.get_by_test_id("returns-by-reason").text_content() == "no returns"

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


async def test_dashboard_shows_a_campaigns_phase_targets_and_channels(
    browser: Browser,
    http_base_url: str,
    app_services: Container,
    auth: Auth,
    tmp_path: Path,
) -> None:
    ended = await double_eleven(app_services.sessionmaker)
    async with app_services.sessionmaker() as session, session.begin():
        # Half-way through its peak now.
        running = await add_campaign(
            session, name="Running", phases=Phases(datetime.now(UTC) - DAY - 12 * HOUR)
        )
        Orders(session).add(
            campaign_id=running, user_id="u1", amount="9.90", accepted_at=datetime.now(UTC)
        )
    page = await browser.new_page(viewport={"width": 1280, "height": 1000})
    await page.goto(f"{http_base_url}/dashboard?campaign={ended.campaign_id}")
    await page.fill("#token", auth.admin()["Authorization"].removeprefix("Bearer "))
    await page.click("#connect button")

    phase = page.get_by_test_id("campaign-phase")

    async def phase_is(text: str) -> bool:
        return await phase.text_content() == text

    await eventually(lambda: phase_is("ended"))
    assert await page.get_by_test_id("campaign-name").text_content() == (
        f"#{ended.campaign_id} Double 11, 2026 (approved)"
    )
    assert await number(page, "campaign-orders") == 10
    assert await number(page, "campaign-new-buyers") == 4
    targets = page.get_by_test_id("campaign-targets")
    percents = {
        key: await targets.locator(f'tr[data-target="{key}"] .percent').text_content()
        for key in ("gmv", "orders", "new_buyers")
    }
    assert percents == {"gmv": "75.5%", "orders": "50.0%", "new_buyers": "80.0%"}
    bar = targets.locator('tr[data-target="gmv"] progress')
    assert await bar.evaluate("(progress) => progress.value") == pytest.approx(0.755)
    channels = page.get_by_test_id("campaign-channels")
    rows = {}
    for code in ("ads", "app", "web", "other", ""):
        row = channels.locator(f'tr[data-channel="{code}"]')
        rows[code] = [await td.text_content() for td in await row.locator("td").all()]
    assert {code: [cells[0], cells[1], cells[5]] for code, cells in rows.items()} == {
        "ads": ["ads", "0", "0.00"],
        "app": ["app", "5", "3.80"],
        "web": ["web", "2", "–"],  # cost 0
        "other": ["other", "1", "–"],
        "": ["none", "2", "–"],
    }
    assert re.sub(r"[^0-9.]", "", rows["app"][3] or "") == "380.00"
    shot = tmp_path / "dashboard-campaign.png"
    await page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copy(shot, DOCS / "dashboard-campaign.png")

    # The campaigns to choose from (GET /api/v1/admin/campaigns), newest first.
    async def listed() -> bool:
        options = page.locator("#campaigns option")
        values = [await o.get_attribute("value") for o in await options.all()]
        return values == [str(running), str(ended.campaign_id), str(ended.baseline_id)]

    await eventually(listed)

    # Another campaign, typed in: the one running now is in its peak.
    await page.fill("#campaign", str(running))
    await page.click("#campaign-form button")
    await eventually(lambda: phase_is("peak"))
    assert "campaign=" + str(running) in page.url
    assert await number(page, "campaign-orders") == 1
    assert await targets.locator("tbody").text_content() == "no targets"

    # An unknown one: said so, nothing shown.
    await page.fill("#campaign", "999999")
    await page.click("#campaign-form button")
    result = page.get_by_test_id("result")

    async def refused() -> bool:
        return "campaign #999999: 404 not_found" in (await result.text_content() or "")

    await eventually(refused)
    assert await page.get_by_test_id("campaign").is_hidden()
