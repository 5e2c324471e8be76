"""The bot advantage: human buyers against bots on one sale, first come first served and
then behind the waiting room, against a real API process (the bench app).

Humans try once a second and arrive over the first seconds (some before the start); bots
try many times a second and are all there before it. Each mode runs on its own event of
the same terms (stock, per-user limit, one unit a purchase). Every buyer keeps trying
until it holds the limit or the sale tells it it is over; in queue mode it first joins,
polls at its own pace until admitted, then buys with its pass. Reported per mode: units
per bot / units per human (1: a bot is no better off than a person), over all humans and
over the humans there before the start, like the bots: the waiting room shuffles everyone
who joined before the start and lets later arrivals follow, so arriving late costs a
human by design, while being fast or many times a second must gain a bot nothing."""

import asyncio
import contextlib
import json
import random
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.auth import mint_token
from app.db import commit
from app.events import service as events
from app.events.schemas import EventCreate
from app.processes.services import build_services
from bench.environment import BenchEnvironment
from bench.server import api_process

HUMANS = 2_000
BOTS = 20
STOCK = 300
LIMIT = 2
HUMAN_TRIES_PER_SECOND = 1.0
BOT_TRIES_PER_SECOND = 50.0
# Humans arrive uniformly over this span around the start (seconds; negative: before it).
HUMAN_ARRIVALS = (-0.5, 2.5)
BOT_ARRIVAL = -1.0
LEAD_SECONDS = 4.0  # from creating the sale to its start: every buyer's connection is up
ADMIT_PER_SECOND = 20
PASS_SECONDS = 30
RUN_BOUND_SECONDS = 40.0


@dataclass(frozen=True)
class ModeResult:
    mode: str
    units_to_bots: int
    units_to_humans: int
    # Humans who arrived before the start, as every bot did, and what they got.
    early_humans: int
    units_to_early_humans: int
    requests: int
    seconds: float

    @property
    def per_bot(self) -> float:
        return self.units_to_bots / BOTS

    @property
    def per_human(self) -> float:
        return self.units_to_humans / HUMANS

    @property
    def bot_advantage(self) -> float | None:
        """Units per bot / units per human (None: humans got nothing)."""
        return self.per_bot / self.per_human if self.per_human else None

    @property
    def per_early_human(self) -> float:
        return self.units_to_early_humans / self.early_humans if self.early_humans else 0.0

    @property
    def bot_advantage_over_early(self) -> float | None:
        """Units per bot / units per human who arrived before the start, as the bots did."""
        return self.per_bot / self.per_early_human if self.per_early_human else None

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "per_bot": self.per_bot,
            "per_human": self.per_human,
            "bot_advantage": self.bot_advantage,
            "per_early_human": self.per_early_human,
            "bot_advantage_over_early": self.bot_advantage_over_early,
        }


@dataclass(frozen=True)
class FairnessResult:
    humans: int
    bots: int
    stock: int
    per_user_limit: int
    modes: list[ModeResult]

    def mode(self, name: str) -> ModeResult | None:
        return next((m for m in self.modes if m.mode == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "humans": self.humans,
            "bots": self.bots,
            "stock": self.stock,
            "per_user_limit": self.per_user_limit,
            "modes": [m.as_dict() for m in self.modes],
        }


class Connection:
    """One buyer's keep-alive HTTP/1.1 connection: a few requests a second each, from
    thousands of buyers at once (an HTTP client library's pool is the bottleneck there)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base_url: str) -> "Connection":
        where = urlsplit(base_url)
        reader, writer = await asyncio.open_connection(where.hostname, where.port)
        return cls(reader, writer)

    async def call(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, Any]:
        head = [f"{method} {path} HTTP/1.1", "Host: bench"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        if body:
            head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        payload = await self.reader.readexactly(length) if length else b""
        return status, json.loads(payload) if payload else None

    def close(self) -> None:
        self.writer.close()


@dataclass
class Buyer:
    user_id: str
    bot: bool
    arrives: float  # seconds after the start
    token: str
    bought: int = 0
    requests: int = 0

    @property
    def interval(self) -> float:
        return 1 / (BOT_TRIES_PER_SECOND if self.bot else HUMAN_TRIES_PER_SECOND)


@dataclass
class Sale:
    event_id: int
    item_id: int
    starts: float  # time.monotonic() of the start
    over: asyncio.Event


async def _open_event(
    env: BenchEnvironment, *, sku: str, access: dict[str, Any]
) -> tuple[int, int, datetime]:
    """The sale, starting LEAD_SECONDS from now: its event id, item id and start."""
    now = datetime.now(UTC)
    starts_at = now + timedelta(seconds=LEAD_SECONDS)
    if access["mode"] == "queue":
        access = {**access, "opens_at": now.isoformat()}
    data = EventCreate.model_validate(
        {
            "name": f"fairness {sku}",
            "starts_at": starts_at,
            "ends_at": starts_at + timedelta(seconds=RUN_BOUND_SECONDS + 30),
            "items": [
                {
                    "sku": sku,
                    "name": sku,
                    "list_price": Decimal("2999.00"),
                    "seckill_price": Decimal("1999.00"),
                    "stock": STOCK,
                    "per_user_limit": LIMIT,
                }
            ],
            "access": access,
        }
    )
    async with build_services(env.settings()) as services, services.sessionmaker() as session:
        event = await events.create_event(session=session, services=services, data=data)
        await commit(session)
        return event.id, event.items[0].id, starts_at


async def _wait_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


async def _buy(connection: Connection, buyer: Buyer, sale: Sale, pass_text: str | None) -> None:
    headers = {"Authorization": f"Bearer {buyer.token}"}
    if pass_text is not None:
        headers["X-Seckill-Pass"] = pass_text
    path = f"/api/v1/items/{sale.item_id}/purchase"
    # Everyone wants the limit, and asks for it in one purchase (a person sets the
    # quantity and presses once; a refused one tries again at their pace).
    body = json.dumps({"quantity": LIMIT}).encode()
    while buyer.bought == 0 and not sale.over.is_set():
        status, answer = await connection.call("POST", path, headers, body)
        buyer.requests += 1
        if status == 202:
            buyer.bought = LIMIT
            return
        code = (answer or {}).get("code")
        if code in ("sold_out", "ended"):
            sale.over.set()
            return
        if code in ("limit_exceeded", "not_admitted"):
            return
        await asyncio.sleep(buyer.interval)


async def _shop(base_url: str, buyer: Buyer, sale: Sale, mode: str) -> None:
    connection = await Connection.open(base_url)
    try:
        await _wait_until(sale.starts + buyer.arrives)
        if mode == "open":
            await _buy(connection, buyer, sale, None)
            return
        headers = {"Authorization": f"Bearer {buyer.token}"}
        path = f"/api/v1/events/{sale.event_id}/queue"
        _status, answer = await connection.call("POST", path, headers)
        buyer.requests += 1
        while not sale.over.is_set():
            state = (answer or {}).get("state")
            if state == "admitted":
                await _buy(connection, buyer, sale, answer["pass"])
                return
            if state == "closed" or state is None:
                return
            await asyncio.sleep(buyer.interval)
            _status, answer = await connection.call("GET", path, headers)
            buyer.requests += 1
    finally:
        connection.close()


def _buyers(env: BenchEnvironment, rng: random.Random) -> list[Buyer]:
    settings = env.settings()

    def token(user_id: str) -> str:
        return mint_token(settings, user_id=user_id, ttl_seconds=3600)

    humans = [
        Buyer(f"human-{n}", False, rng.uniform(*HUMAN_ARRIVALS), token(f"human-{n}"))
        for n in range(HUMANS)
    ]
    bots = [Buyer(f"bot-{n}", True, BOT_ARRIVAL, token(f"bot-{n}")) for n in range(BOTS)]
    return humans + bots


async def _run_mode(env: BenchEnvironment, base_url: str, mode: str, seed: int) -> ModeResult:
    access: dict[str, Any] = {"mode": "open"}
    if mode == "queue":
        access = {
            "mode": "queue",
            "admit_per_second": ADMIT_PER_SECOND,
            "pass_seconds": PASS_SECONDS,
        }
    buyers = _buyers(env, random.Random(seed))
    event_id, item_id, starts_at = await _open_event(env, sku=f"FAIR-{mode.upper()}", access=access)
    until_start = (starts_at - datetime.now(UTC)).total_seconds()
    sale = Sale(event_id, item_id, time.monotonic() + until_start, asyncio.Event())
    began = time.monotonic()
    tasks = [asyncio.create_task(_shop(base_url, b, sale, mode)) for b in buyers]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), RUN_BOUND_SECONDS)
    for task in tasks:
        task.cancel()
    return ModeResult(
        mode=mode,
        units_to_bots=sum(b.bought for b in buyers if b.bot),
        units_to_humans=sum(b.bought for b in buyers if not b.bot),
        early_humans=sum(1 for b in buyers if not b.bot and b.arrives < 0),
        units_to_early_humans=sum(b.bought for b in buyers if not b.bot and b.arrives < 0),
        requests=sum(b.requests for b in buyers),
        seconds=time.monotonic() - began,
    )


async def measure_fairness(env: BenchEnvironment, workdir: Path) -> FairnessResult:
    async with api_process(env, workdir / "api-fairness.log") as api:
        modes = [await _run_mode(env, api.base_url, mode, seed=7) for mode in ("open", "queue")]
    return FairnessResult(humans=HUMANS, bots=BOTS, stock=STOCK, per_user_limit=LIMIT, modes=modes)


def print_fairness(result: FairnessResult) -> None:
    print(
        f"bot advantage: {result.humans:,} humans (1 try/s, arriving over the first 3 s) vs "
        f"{result.bots} bots (50 tries/s, there before the start) on {result.stock} units, "
        f"limit {result.per_user_limit} each"
    )
    print(
        f"{'mode':<8}{'to bots':>9}{'to humans':>11}{'per bot':>9}{'per human':>11}"
        f"{'ratio':>8}{'per early human':>17}{'ratio':>8}"
    )
    for m in result.modes:
        print(
            f"{m.mode:<8}{m.units_to_bots:>9}{m.units_to_humans:>11}{m.per_bot:>9.2f}"
            f"{m.per_human:>11.3f}{_ratio(m.bot_advantage):>8}{m.per_early_human:>17.3f}"
            f"{_ratio(m.bot_advantage_over_early):>8}"
        )
    print("(early: the humans there before the start, as every bot was)")


def _ratio(value: float | None) -> str:
    return "inf" if value is None else f"{value:.2f}"
