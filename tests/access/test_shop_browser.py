"""The storefront page (GET /shop/{event_id}) in a real browser (Debian's headless
Chromium driven by Playwright) against the app served on a real socket: an open sale
from the countdown to a paid order, and a draw from registration (with the page solving
a proof of work) to the winner's purchase with the pass and the loser's "lost"; a
waiting room from joins before the start, through places drawn at the start and
admission in queue order, to purchases with the pass and a sold-out close. A
screenshot of the paid order goes to docs/shop.png with UPDATE_SCREENSHOTS=1."""

import asyncio
import hashlib
import os
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page

from app.container import Container
from tests.support.draws import close_registration, create_access_event, draw_access
from tests.support.factories import Auth, create_event, item_spec
from tests.support.lifecycle import store_orders
from tests.support.queues import create_queue_event
from tests.support.waiting import eventually

pytestmark = pytest.mark.slow
# Guards against a hung page, far above what a step takes (a step is a second or two).
STEP_SECONDS = 20.0
DOCS = Path(__file__).resolve().parents[2] / "docs"


def watch_errors(page: Page, errors: list[str]) -> None:
    """Collect the page's uncaught errors and what its policy blocked (a 4xx the page
    handles is logged by Chromium too, as a failed load: not an error of the page)."""
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    page.on("console", console)


async def open_shop(
    browser: Browser,
    base_url: str,
    event_id: int,
    auth: Auth,
    user: str,
    errors: list[str],
    *,
    by_link: bool = True,
) -> Page:
    """A shopper's own browser (its own context), on the event's page, signed in by the
    `?token=` link or else through the token field."""
    page = await browser.new_page()
    watch_errors(page, errors)
    token = auth.headers(user)["Authorization"].removeprefix("Bearer ")
    if by_link:
        await page.goto(f"{base_url}/shop/{event_id}?token={token}")
    else:
        await page.goto(f"{base_url}/shop/{event_id}")
        await page.fill("#token", token)
        await page.get_by_test_id("sign-in").click()
    await page.get_by_test_id("who").filter(has_text=f"signed in as {user}").wait_for()
    return page


async def text(page: Page, testid: str) -> str:
    return await page.get_by_test_id(testid).first.text_content() or ""


async def shows(page: Page, testid: str, pattern: str) -> None:
    """Wait until the element's text matches `pattern`."""

    async def matches() -> bool:
        return re.search(pattern, await text(page, testid)) is not None

    await eventually(matches, within=STEP_SECONDS)


async def wait_until(moment: datetime) -> None:
    await asyncio.sleep(max((moment - datetime.now(moment.tzinfo)).total_seconds(), 0) + 0.3)


async def test_an_open_sale_from_the_countdown_to_a_paid_order(
    browser: Browser,
    http_base_url: str,
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
    tmp_path: Path,
) -> None:
    event = await create_event(
        client,
        auth,
        name="Open drop",
        starts_in=timedelta(seconds=4),
        items=[item_spec(sku="TEE", name="T-shirt", stock=5, per_user_limit=1)],
    )
    errors: list[str] = []
    page = await open_shop(browser, http_base_url, event.id, auth, "olga", errors, by_link=False)
    await shows(page, "event-name", "^Open drop$")
    await shows(page, "countdown", r"^Starts in 00:00:0[1-4]$")
    row = page.locator(f'tr[data-item="{event.items[0].id}"]')
    buy = row.get_by_test_id("buy")
    assert await buy.is_disabled()
    assert await row.locator(".remaining").text_content() == "5"

    # At the start (by the server's clock) Buy opens.
    await buy.wait_for(state="visible")
    await eventually(buy.is_enabled, within=STEP_SECONDS)
    await shows(page, "countdown", "^On sale now$")
    await wait_until(event.starts_at)  # the server's clock, not only the page's
    await buy.click()
    order = page.get_by_test_id("order")
    await order.wait_for()
    await shows(page, "order-status", "^queued$")
    await shows(page, "message", "Got it")

    # The worker writes it; the page follows it to pending payment, then pays.
    assert await store_orders(app_services) == 1
    await shows(page, "order-status", "^pending payment$")
    await order.get_by_test_id("pay").click()
    await shows(page, "order-status", "^paid$")
    await shows(page, "message", "Paid")
    shot = tmp_path / "shop.png"
    await page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        shutil.copy(shot, DOCS / "shop.png")

    async def one_sold() -> bool:
        return await row.locator(".remaining").text_content() == "4"

    await eventually(one_sold, within=STEP_SECONDS)

    # A refusal's detail is what the shopper reads: over the limit.
    await eventually(buy.is_enabled, within=STEP_SECONDS)
    await buy.click()
    await shows(page, "message", "over the limit")
    assert "error" in (await page.get_by_test_id("message").get_attribute("class") or "")
    assert await page.get_by_test_id("order").count() == 1
    assert errors == []


async def test_a_draw_from_registration_to_the_winners_purchase(
    browser: Browser,
    http_base_url: str,
    client: httpx.AsyncClient,
    auth: Auth,
    app_services: Container,
) -> None:
    starts_in = timedelta(seconds=10)
    event = await create_access_event(
        client,
        auth,
        draw_access(lasts=timedelta(seconds=60) + starts_in, winners=1, pow_bits=8),
        name="Sneaker draw",
        starts_in=starts_in,
        items=[item_spec(sku="SNKR", name="Sneaker", stock=1, per_user_limit=1)],
    )
    users = ["ann", "贝娅"]  # a user id beyond ASCII: the proof of work hashes UTF-8
    errors: list[str] = []
    pages = {u: await open_shop(browser, http_base_url, event.id, auth, u, errors) for u in users}
    # The token is not left in the address bar.
    assert "token" not in pages["ann"].url
    for page in pages.values():
        await shows(page, "draw-commitment", "^[0-9a-f]{64}$")
        await page.get_by_test_id("register").click()
        # The page solved the event's challenge before registering.
        await shows(page, "pow", r"Proof of work done \(8 bits")
        await shows(page, "draw-status", "^registered")
        assert await page.get_by_test_id("register").is_disabled()
    await shows(pages["ann"], "draw-registrants", "^2$")

    # Registration closes; the page's next read of the draw runs it.
    await close_registration(app_services, event.id)
    results = {}
    for user, page in pages.items():
        await shows(page, "draw-status", "^(won|lost)")
        results[user] = (await text(page, "draw-status")).split(":")[0]
    assert sorted(results.values()) == ["lost", "won"]
    [winner] = [user for user, result in results.items() if result == "won"]
    [loser] = [user for user, result in results.items() if result == "lost"]
    # The seed is out, and it is the one committed to.
    seed = await text(pages[winner], "draw-seed")
    commitment = await text(pages[winner], "draw-commitment")
    assert hashlib.sha256(seed.encode()).hexdigest() == commitment
    assert await text(pages[winner], "draw-winners") == "1"
    assert (await text(pages[loser], "draw-status")) == "lost: not drawn this time"

    # From the start the winner buys with the pass; the loser is never offered Buy.
    item_id = event.items[0].id
    winners_buy = pages[winner].locator(f'tr[data-item="{item_id}"]').get_by_test_id("buy")
    await eventually(winners_buy.is_enabled, within=STEP_SECONDS)
    await wait_until(event.starts_at)
    await winners_buy.click()
    await shows(pages[winner], "order-status", "^(queued|pending payment)$")
    await shows(pages[winner], "message", "Got it")
    losers_buy = pages[loser].locator(f'tr[data-item="{item_id}"]').get_by_test_id("buy")
    assert await losers_buy.is_disabled()
    # One unit, bought: both pages say the sale is sold out.
    for page in pages.values():
        await shows(page, "closed", "^Sold out.$")
    assert errors == []


async def test_a_waiting_room_from_the_random_start_to_a_sold_out_close(
    browser: Browser,
    http_base_url: str,
    client: httpx.AsyncClient,
    auth: Auth,
) -> None:
    users = [f"q{i}" for i in range(5)]
    event = await create_queue_event(
        client,
        auth,
        name="Console drop",
        starts_in=timedelta(seconds=8),
        admit_per_second=1,
        pass_seconds=60,
        pow_bits=4,
        items=[item_spec(sku="CONSOLE", name="Console", stock=2, per_user_limit=1)],
    )
    errors: list[str] = []
    pages = {u: await open_shop(browser, http_base_url, event.id, auth, u, errors) for u in users}
    # Everyone joins before the start: no place yet, the order is drawn at the start.
    for page in pages.values():
        await shows(page, "queue-window", "waiting room opens")
        await page.get_by_test_id("join-queue").click()
        await shows(page, "queue-state", "^waiting: the order is drawn at the start$")
        assert await text(page, "queue-position") == "–"
        assert await page.get_by_test_id("join-queue").is_disabled()
    assert datetime.now(UTC) < event.starts_at, "the machine was too slow to join in time"

    # At the start every page shows its place: the places are 1..5, in a random order
    # (one run cannot show it uniform: tests/lua/test_queue.py does, over many shuffles).
    positions = {}
    for user, page in pages.items():
        await shows(page, "queue-position", r"^[1-5]$")
        positions[user] = int(await text(page, "queue-position"))
    assert sorted(positions.values()) == [1, 2, 3, 4, 5]
    last = max(positions, key=positions.__getitem__)
    await shows(pages[last], "queue-wait", r"^00:00:0\d$")

    # One admitted a second, in queue order; the admitted buy with their pass until the
    # two units are gone, and the queue then closes for everyone still waiting.
    async def follow(user: str) -> str:
        page = pages[user]
        await shows(page, "queue-state", "^(admitted|closed)")
        if (await text(page, "queue-state")).startswith("closed"):
            return "closed"
        buy = page.get_by_test_id("buy")
        sold_out = page.get_by_test_id("closed")

        async def buy_or_sold_out() -> bool:
            return await buy.is_enabled() or await sold_out.is_visible()

        await eventually(buy_or_sold_out, within=STEP_SECONDS)
        if await buy.is_enabled():
            await buy.click()
            await shows(page, "message", "Got it|no stock left")
        return "bought" if await page.get_by_test_id("order").count() else "admitted, no stock"

    outcomes = dict(zip(users, await asyncio.gather(*(follow(u) for u in users)), strict=True))
    by_position = [outcomes[user] for user in sorted(users, key=positions.__getitem__)]
    assert by_position[:2] == ["bought", "bought"], (positions, outcomes)
    # Admission is in queue order: those let in are the first places, the closed the last.
    closed_from = by_position.index("closed")
    assert all(outcome == "closed" for outcome in by_position[closed_from:]), by_position
    assert by_position[-1] == "closed"
    for user, outcome in outcomes.items():
        if outcome == "closed":
            await shows(pages[user], "closed", "^Sold out.$")
            assert await text(pages[user], "queue-position") == "–"
    assert errors == []


async def test_a_reminder_reserved_before_the_start_shows_in_the_waiting_count(
    browser: Browser, http_base_url: str, client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_event(
        client,
        auth,
        name="Evening drop",
        starts_in=timedelta(hours=1),
        items=[item_spec(sku="CAP", name="Cap", stock=5, per_user_limit=1)],
    )
    for user in ("early-1", "early-2"):
        reserved = await client.post(
            f"/api/v1/events/{event.id}/reminders", headers=auth.headers(user)
        )
        assert reserved.status_code == 201, reserved.text
    errors: list[str] = []
    page = await open_shop(browser, http_base_url, event.id, auth, "rita", errors)
    await shows(page, "waiting", "^2 waiting for ")
    remind = page.get_by_test_id("remind")
    await eventually(remind.is_enabled, within=STEP_SECONDS)
    await remind.click()
    await shows(page, "message", "remind you")
    await shows(page, "waiting", "^3 waiting for ")
    assert await remind.is_disabled()
    assert errors == []
