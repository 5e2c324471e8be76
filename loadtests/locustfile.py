"""A flash crowd, as real storefront clients produce it.

Each simulated shopper has its own token (a distinct user id), reads the server's clock
and the event, counts down to the opening by the server's clock (members open earlier),
then buys with an Idempotency-Key, retrying a dropped connection with the same key, and
polls an accepted order until the order writer has stored it. After that it keeps the
event page open, refreshing now and then.

Refusals the contract promises (sold_out, limit_exceeded, ended, not_started, paused,
rate_limited) are expected outcomes and count as successes; 5xx answers, dropped
connections and anything else unexpected count as failures.

Configuration (environment):
  SECKILL_JWT_SECRET            the service's secret (tokens are minted here)
  SECKILL_LOADTEST_EVENT_ID     event to buy from (default: the live or next event)
  SECKILL_LOADTEST_ITEM_ID      only this item (default: any item of the event)
  SECKILL_LOADTEST_QUANTITIES   quantities to pick from, e.g. "1,1,1,2" (capped by the limit)
  SECKILL_LOADTEST_MEMBER_SHARE share of shoppers who are members (default 0.1)
  SECKILL_LOADTEST_POLLS        order polls before giving up on `queued` (default 30)
  SECKILL_LOADTEST_POLL_SECONDS wait between polls (default 0.5)
  SECKILL_LOADTEST_RUN          tag in the user ids, so reruns bring new shoppers
  SECKILL_LOADTEST_SUMMARY      file to write the run's figures to (JSON), for the
                                headline loadtests/run.sh prints (tools.py headline)

The coupon-claim scenario (a popular coupon is a flash sale of its own: thousands claim
the first 1,000 at 10:00) runs the `CouponClaimer` users, mixed into the crowd with
  SECKILL_LOADTEST_COUPON_WEIGHT  weight of claimers next to shoppers (weight 1; default 0:
                                  none); add `CouponClaimer` to locust's command line
                                  for claimers only
  SECKILL_LOADTEST_COUPON_ID      template to claim (default: the first claimable one)
Each claimer counts down to the claim window by the server's clock, claims once with an
Idempotency-Key (retries reuse it), then polls GET /api/v1/me/coupons until the order
writer has stored the coupon. coupon_exhausted, limit_exceeded, ended and
audience_mismatch are expected outcomes.
"""

import itertools
import json
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import FastHttpUser, between, events, task
from locust.contrib.fasthttp import ResponseContextManager
from locust.env import Environment

from app.auth import mint_token
from app.config import Settings

# Final refusals the contract promises: a crowd is supposed to meet them. (not_started and
# rate_limited are waited out and retried.)
EXPECTED_REFUSALS = {"sold_out", "limit_exceeded", "ended", "paused"}
PURCHASE_REQUESTS = 30  # per purchase (one Idempotency-Key), waits and retries included
NETWORK_RETRIES = 5
TOKEN_TTL_SECONDS = 3600
# uvicorn's default keep-alive (5 s), with a margin.
SERVER_KEEP_ALIVE_SECONDS = 4.0
EVENT_PATH = "/api/v1/events/[event_id]"
PURCHASE_PATH = "/api/v1/items/[item_id]/purchase"
ORDER_PATH = "/api/v1/orders/[order_id]"

RUN = os.environ.get("SECKILL_LOADTEST_RUN") or uuid.uuid4().hex[:8]
QUANTITIES = [int(q) for q in os.environ.get("SECKILL_LOADTEST_QUANTITIES", "1,1,1,2").split(",")]
MEMBER_SHARE = float(os.environ.get("SECKILL_LOADTEST_MEMBER_SHARE", "0.1"))
POLLS = int(os.environ.get("SECKILL_LOADTEST_POLLS", "30"))
POLL_SECONDS = float(os.environ.get("SECKILL_LOADTEST_POLL_SECONDS", "0.5"))
ONLY_ITEM = os.environ.get("SECKILL_LOADTEST_ITEM_ID")

_settings = Settings()
_shopper_numbers = itertools.count(1)
_event_id: int | None = (
    int(os.environ["SECKILL_LOADTEST_EVENT_ID"])
    if os.environ.get("SECKILL_LOADTEST_EVENT_ID")
    else None
)
# What the crowd met, printed at the end next to Locust's own table.
outcomes: Counter[str] = Counter()


@dataclass
class Rush:
    """When purchases were answered (this machine's clock): the rush runs from the first
    answer to the last, and the sale sold out at the first `sold_out`."""

    first: float | None = None
    last: float | None = None
    sold_out: float | None = None

    def answered(self, code: str | None = None) -> None:
        now = time.time()
        self.first = now if self.first is None else self.first
        self.last = now
        if code == "sold_out" and self.sold_out is None:
            self.sold_out = now


rush = Rush()


@dataclass(frozen=True)
class Sale:
    opens_at: float  # on the server's clock, epoch seconds, for this shopper
    items: list[dict[str, Any]]


def _epoch(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


def _problem_code(response: ResponseContextManager) -> str | None:
    try:
        body = response.json()
    except (ValueError, TypeError):
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


class Storefront(FastHttpUser):
    """A storefront client with its own token and the server's clock."""

    abstract = True
    # After the rush: the page is refreshed now and then.
    wait_time = between(2, 6)

    def on_start(self) -> None:
        number = next(_shopper_numbers)
        self.user_id = f"lt-{RUN}-{os.getpid()}-{number}"
        self.member = random.random() < MEMBER_SHARE
        token = mint_token(
            _settings, user_id=self.user_id, member=self.member, ttl_seconds=TOKEN_TTL_SECONDS
        )
        self.auth = {"Authorization": f"Bearer {token}"}
        self.clock_offset = 0.0  # server clock minus ours
        self.done = False

    def sync_clock(self) -> None:
        sent = time.time()
        with self.client.get("/api/v1/time", catch_response=True) as response:
            received = time.time()
            if response.status_code != 200:
                response.failure(f"time: HTTP {response.status_code}")
                return
            # The server read its clock about halfway through the round trip.
            server_now = _epoch(response.json()["now"])
            self.clock_offset = server_now - (sent + received) / 2

    def wait_for_opening(self, sale: Sale) -> None:
        countdown = sale.opens_at - (time.time() + self.clock_offset)
        if countdown <= 0:
            return
        if countdown > SERVER_KEEP_ALIVE_SECONDS:
            # The server closes a connection idle this long. A browser silently resends a
            # request that meets such a connection; this client would report an error, so
            # the shopper starts the rush on a fresh connection, as a phone coming back
            # from the background would.
            self.client.client.close()
        # Storefronts enable the button on the dot; a few milliseconds of spread is the
        # difference between devices.
        gevent.sleep(countdown + random.uniform(0, 0.05))


class Shopper(Storefront):
    @task
    def shop(self) -> None:
        if self.done:
            self.browse()
            return
        self.done = True
        self.sync_clock()
        sale = self.read_sale()
        if sale is None:
            return
        self.wait_for_opening(sale)
        item = random.choice(sale.items)
        quantity = min(random.choice(QUANTITIES), item["per_user_limit"])
        order_id = self.purchase(item["id"], quantity)
        if order_id is not None:
            self.follow_order(order_id)

    # -- the journey's steps ---------------------------------------------------------

    def read_sale(self) -> Sale | None:
        event_id = _event_id or self.find_event()
        if event_id is None:
            return None
        with self.client.get(
            f"/api/v1/events/{event_id}", name=EVENT_PATH, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"event {event_id}: HTTP {response.status_code}")
                return None
            event = response.json()
        items = [i for i in event["items"] if not ONLY_ITEM or str(i["id"]) == ONLY_ITEM]
        if not items:
            outcomes["no item to buy"] += 1
            return None
        opens_at = _epoch(event["starts_at"])
        if self.member:
            opens_at -= event["member_early_access_seconds"]
        return Sale(opens_at=opens_at, items=items)

    def find_event(self) -> int | None:
        """The live event, else the next one (the storefront's home page)."""
        global _event_id
        for state in ("live", "upcoming"):
            with self.client.get(
                f"/api/v1/events?state={state}&limit=1",
                name="/api/v1/events?state=[state]",
                catch_response=True,
            ) as response:
                if response.status_code != 200:
                    response.failure(f"events: HTTP {response.status_code}")
                    return None
                found = response.json()
            if found:
                _event_id = int(found[0]["id"])
                return _event_id
        outcomes["no event to buy from"] += 1
        return None

    def purchase(self, item_id: int, quantity: int) -> str | None:
        """Buy once, whatever the network does: one Idempotency-Key for every retry."""
        headers = {**self.auth, "Idempotency-Key": uuid.uuid4().hex}
        network_errors = 0
        for _ in range(PURCHASE_REQUESTS):
            with self.client.post(
                f"/api/v1/items/{item_id}/purchase",
                json={"quantity": quantity},
                headers=headers,
                name=PURCHASE_PATH,
                catch_response=True,
            ) as response:
                status = response.status_code
                if status == 202:
                    response.success()
                    rush.answered()
                    outcomes["accepted" if not network_errors else "accepted on retry"] += 1
                    order_id: str = response.json()["order_id"]
                    return order_id
                if status == 0:
                    network_errors += 1
                    response.failure(f"network error ({getattr(response, 'error', None)})")
                    if network_errors >= NETWORK_RETRIES:
                        break
                    gevent.sleep(min(0.1 * 2**network_errors, 2.0))
                    continue
                code = _problem_code(response)
                if status == 429:
                    response.success()  # told to wait, and waiting is what a client does
                    rush.answered()
                    outcomes["rate_limited (waited)"] += 1
                    gevent.sleep(float(response.headers.get("Retry-After") or 1))
                    continue
                if status == 409 and code == "not_started":
                    response.success()  # this device's clock runs a little fast
                    outcomes["not_started (retried)"] += 1
                    gevent.sleep(random.uniform(0.05, 0.2))
                    continue
                if status == 409 and code in EXPECTED_REFUSALS:
                    response.success()
                    rush.answered(code)
                    outcomes[code] += 1
                    return None
                response.failure(f"purchase: HTTP {status} {code or response.text}")
                outcomes[f"purchase HTTP {status}"] += 1
                return None
        outcomes["purchase gave up"] += 1
        return None

    def follow_order(self, order_id: str) -> None:
        """Poll until the order leaves `queued` (the writer stored it), within bounds."""
        for _ in range(POLLS):
            with self.client.get(
                f"/api/v1/orders/{order_id}",
                headers=self.auth,
                name=ORDER_PATH,
                catch_response=True,
            ) as response:
                if response.status_code != 200:
                    # An accepted order must be visible to its owner, queued or stored.
                    response.failure(f"order {order_id}: HTTP {response.status_code}")
                    outcomes[f"order HTTP {response.status_code}"] += 1
                    return
                status = response.json()["status"]
            if status != "queued":
                outcomes[f"order {status}"] += 1
                return
            gevent.sleep(POLL_SECONDS)
        outcomes["order still queued after polling"] += 1
        self.environment.events.request.fire(
            request_type="POLL",
            name=ORDER_PATH,
            response_time=POLLS * POLL_SECONDS * 1000,
            response_length=0,
            exception=RuntimeError(f"order {order_id} still queued after {POLLS} polls"),
            context={},
        )

    def browse(self) -> None:
        """After the rush: the event page stays open and refreshes now and then."""
        if _event_id is not None:
            self.client.get(f"/api/v1/events/{_event_id}", name=EVENT_PATH)


COUPON_WEIGHT = int(os.environ.get("SECKILL_LOADTEST_COUPON_WEIGHT", "0"))
_coupon_id: int | None = (
    int(os.environ["SECKILL_LOADTEST_COUPON_ID"])
    if os.environ.get("SECKILL_LOADTEST_COUPON_ID")
    else None
)
EXPECTED_CLAIM_REFUSALS = {"coupon_exhausted", "limit_exceeded", "ended", "audience_mismatch"}
CLAIM_PATH = "/api/v1/coupons/[coupon_id]/claim"


class CouponClaimer(Storefront):
    """A shopper after a popular coupon: count down, claim once, see it in their list."""

    weight = COUPON_WEIGHT or 1
    # Only when given a weight: the default crowd stays shoppers.
    abstract = COUPON_WEIGHT == 0

    @task
    def claim_journey(self) -> None:
        if self.done:
            self.client.get("/api/v1/coupons", name="/api/v1/coupons")
            return
        self.done = True
        self.sync_clock()
        coupon = self.find_coupon()
        if coupon is None:
            return
        opens_at = _epoch(coupon["claim_starts_at"])
        self.wait_for_opening(Sale(opens_at=opens_at, items=[]))
        claim_id = self.claim(int(coupon["id"]))
        if claim_id is not None:
            self.follow_claim(claim_id)

    def find_coupon(self) -> dict[str, Any] | None:
        global _coupon_id
        with self.client.get("/api/v1/coupons", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"coupons: HTTP {response.status_code}")
                return None
            found = response.json()
        for coupon in found:
            if _coupon_id is None or int(coupon["id"]) == _coupon_id:
                _coupon_id = int(coupon["id"])
                return dict(coupon)
        outcomes["no coupon to claim"] += 1
        return None

    def claim(self, coupon_id: int) -> str | None:
        headers = {**self.auth, "Idempotency-Key": uuid.uuid4().hex}
        network_errors = 0
        for _ in range(PURCHASE_REQUESTS):
            with self.client.post(
                f"/api/v1/coupons/{coupon_id}/claim",
                headers=headers,
                name=CLAIM_PATH,
                catch_response=True,
            ) as response:
                status = response.status_code
                if status == 201:
                    response.success()
                    outcomes["claimed" if not network_errors else "claimed on retry"] += 1
                    claim_id: str = response.json()["id"]
                    return claim_id
                if status == 0:
                    network_errors += 1
                    response.failure(f"network error ({getattr(response, 'error', None)})")
                    if network_errors >= NETWORK_RETRIES:
                        break
                    gevent.sleep(min(0.1 * 2**network_errors, 2.0))
                    continue
                code = _problem_code(response)
                if status == 429:
                    response.success()
                    outcomes["claim rate_limited (waited)"] += 1
                    gevent.sleep(float(response.headers.get("Retry-After") or 1))
                    continue
                if status == 409 and code == "not_started":
                    response.success()
                    outcomes["claim not_started (retried)"] += 1
                    gevent.sleep(random.uniform(0.05, 0.2))
                    continue
                if code in EXPECTED_CLAIM_REFUSALS:
                    response.success()
                    outcomes[f"claim {code}"] += 1
                    return None
                response.failure(f"claim: HTTP {status} {code or response.text}")
                outcomes[f"claim HTTP {status}"] += 1
                return None
        outcomes["claim gave up"] += 1
        return None

    def follow_claim(self, claim_id: str) -> None:
        """Poll the caller's coupons until the claimed one is stored."""
        for _ in range(POLLS):
            with self.client.get(
                "/api/v1/me/coupons", headers=self.auth, name="/api/v1/me/coupons",
                catch_response=True,
            ) as response:  # fmt: skip
                if response.status_code != 200:
                    response.failure(f"my coupons: HTTP {response.status_code}")
                    return
                if any(c["id"] == claim_id for c in response.json()):
                    outcomes["coupon stored"] += 1
                    return
            gevent.sleep(POLL_SECONDS)
        outcomes["coupon not stored after polling"] += 1


def _print_outcomes(environment: Environment, **_kwargs: Any) -> None:
    print("flash-crowd outcomes:", json.dumps(dict(sorted(outcomes.items()))), flush=True)
    if path := os.environ.get("SECKILL_LOADTEST_SUMMARY"):
        with open(path, "w") as summary:
            json.dump(_summary(environment), summary)


def _summary(environment: Environment) -> dict[str, Any]:
    """The run's figures, as `loadtests/tools.py headline` reads them."""
    stats = environment.stats
    if stats is None:
        return {}
    purchases = stats.get(PURCHASE_PATH, "POST")
    return {
        "requests": stats.total.num_requests,
        "failures": stats.total.num_failures,
        "seconds": max(stats.total.last_request_timestamp or 0, stats.total.start_time)
        - stats.total.start_time,
        "accepted": outcomes["accepted"] + outcomes["accepted on retry"],
        "refused": sum(outcomes[code] for code in EXPECTED_REFUSALS),
        "rate_limited": outcomes["rate_limited (waited)"],
        "rush_seconds": (rush.last - rush.first) if rush.first and rush.last else 0.0,
        "sold_out_after_seconds": (rush.sold_out - rush.first)
        if rush.first and rush.sold_out
        else None,
        "purchase_p50_ms": purchases.get_response_time_percentile(0.5),
        "purchase_p99_ms": purchases.get_response_time_percentile(0.99),
    }


events.test_stop.add_listener(_print_outcomes)  # type: ignore[no-untyped-call]
