"""The HTTP phase: the real purchase endpoint beside its two baselines, each warmed up
and then loaded by wrk at a fixed concurrency, in rounds (targets interleaved, so a
noisy neighbour on the machine hurts all of them alike)."""

import contextlib
import resource
import statistics
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from app.access import passes
from app.access.passes import Pass
from app.auth import mint_token
from app.container import Container
from app.events.schemas import MAX_PER_USER_LIMIT
from app.moments import now_ms
from app.processes.services import build_services
from app.store.sale_state import remaining_stock
from bench import naive
from bench.apps import (
    BARE_PATH,
    FRAMEWORK_PATH,
    LOTTERY_PATH,
    NAIVE_PATH,
    NAIVE_REDIS_PATH,
    NOOP_PATH,
    PURCHASE_PATH,
    QUEUE_PATH,
    UNLIMITED_PATH,
)
from bench.environment import BenchEnvironment, connect
from bench.load import LoadResult, run_wrk, user_id, write_passes, write_tokens
from bench.sales import event_of, hold_places, open_campaign_sale, open_lottery, open_sale
from bench.server import ApiProcess, api_process, order_writer_process

# Enough that no run sells out: the accept path is what is measured.
ACCEPT_STOCK = 10_000_000
NAIVE_ITEM_ID = 1
BODY = '{"quantity": 1}'
MEMBER_PRICE = Decimal("1799.00")
TOKEN_TTL_SECONDS = 12 * 3600


@dataclass(frozen=True)
class HttpOptions:
    connections: int
    threads: int
    seconds: float
    warmup_seconds: float
    rounds: int
    users: int
    with_writer: bool
    # Distinct users of the cold-token targets; when a run needs more, the file wraps.
    cold_users: int = 300_000
    api_workers: int = 1
    # Target keys to run (None: all), e.g. ("purchase", "purchase_unlimited").
    only: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Target:
    key: str
    label: str
    path: str
    status: int  # what every request should get
    # Every request a user whose token this process has never seen (sale day's first
    # requests): tokens from a separate file, never reused within a bench run.
    cold: bool = False
    # One more header on every request (the campaign target's X-Channel).
    header: tuple[str, str] | None = None
    # Each request carries its user's X-Seckill-Pass (a queue sale's purchases).
    passes: bool = False
    # Members' tokens (the warm file's users, as members).
    member: bool = False
    method: str = "POST"
    body: str = BODY  # not sent with a GET


@dataclass
class TargetRuns:
    target: Target
    measured: list[LoadResult] = field(default_factory=list)
    warmups: list[LoadResult] = field(default_factory=list)
    cpu_us_per_request: list[float] = field(default_factory=list)

    def cpu_us(self) -> float | None:
        """The API process's CPU time per request (median over rounds), if known."""
        return statistics.median(self.cpu_us_per_request) if self.cpu_us_per_request else None

    def summary(self) -> LoadResult:
        """The median of each figure over the rounds."""
        values: dict[str, Any] = {}
        for f in fields(LoadResult):
            median = statistics.median(getattr(r, f.name) for r in self.measured)
            values[f.name] = int(median) if f.type in (int, "int") else float(median)
        return LoadResult(**values)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.target.label,
            "path": self.target.path,
            "expected_status": self.target.status,
            "summary": self.summary().as_dict(),
            "api_cpu_us_per_request": self.cpu_us(),
            "api_cpu_us_per_request_rounds": self.cpu_us_per_request,
            "rounds": [r.as_dict() for r in self.measured],
            "warmups": [r.as_dict() for r in self.warmups],
        }


@dataclass
class HttpPhase:
    runs: dict[str, TargetRuns]
    checks: dict[str, Any]
    wrk_output: dict[str, str]


def targets(
    *,
    accept_item: int,
    sold_out_item: int,
    campaign_item: int,
    pass_item: int = 0,
    member_item: int = 0,
    join_event: int = 0,
    poll_event: int = 0,
    lottery: int = 0,
) -> list[Target]:
    accept = PURCHASE_PATH.format(item_id=accept_item)
    sold_out = PURCHASE_PATH.format(item_id=sold_out_item)
    return [
        Target("bare", "bare ASGI (server ceiling)", BARE_PATH.format(item_id=accept_item), 202),
        Target("noop", "no-op (framework ceiling)", NOOP_PATH.format(item_id=accept_item), 202),
        Target("naive", "naive (PG row lock)", NAIVE_PATH.format(item_id=NAIVE_ITEM_ID), 202),
        Target(
            "naive_redis",
            "naive (FastAPI + redis-py)",
            NAIVE_REDIS_PATH.format(item_id=accept_item),
            202,
            # Its design has no token cache: every token is decoded, seen before or not.
            cold=True,
        ),
        Target("purchase", "purchase (accept)", accept, 202),
        Target(
            "purchase_campaign",
            "campaign + X-Channel",
            PURCHASE_PATH.format(item_id=campaign_item),
            202,
            header=("X-Channel", "app"),
        ),
        # A member's purchase of an item with a member price and a reserve for members
        # (issue 21): the price swapped and the members' units counted in purchase.lua.
        Target(
            "purchase_member",
            "member purchase (reserve)",
            PURCHASE_PATH.format(item_id=member_item),
            202,
            member=True,
        ),
        Target(
            "purchase_framework",
            "purchase via framework",
            FRAMEWORK_PATH.format(item_id=accept_item),
            202,
        ),
        Target(
            "purchase_unlimited",
            "purchase (rate limiter off)",
            UNLIMITED_PATH.format(item_id=accept_item),
            202,
        ),
        Target(
            "purchase_pass",
            "purchase with passes",
            PURCHASE_PATH.format(item_id=pass_item),
            202,
            passes=True,
        ),
        Target("purchase_cold", "purchase, cold tokens", accept, 202, cold=True),
        Target("purchase_sold_out", "purchase (sold out)", sold_out, 409),
        Target(
            "purchase_sold_out_framework",
            "sold out via framework",
            FRAMEWORK_PATH.format(item_id=sold_out_item),
            409,
        ),
        Target("purchase_sold_out_cold", "sold out, cold tokens", sold_out, 409, cold=True),
        # A join before the start by a user never seen: a new place (a random score),
        # stored in Postgres and Redis.
        Target(
            "queue_join",
            "queue join (new places)",
            QUEUE_PATH.format(event_id=join_event),
            200,
            cold=True,
            body="",
        ),
        # Started, admitting one a second: nearly every poll is a place still waiting, its
        # rank and estimated wait computed.
        Target(
            "queue_poll",
            "queue poll (waiting)",
            QUEUE_PATH.format(event_id=poll_event),
            200,
            method="GET",
            body="",
        ),
        # A draw of a lottery that never runs out: decided in Redis, recorded in its
        # draws stream (half of them win).
        Target(
            "lottery_draw",
            "lottery draw",
            LOTTERY_PATH.format(lottery_id=lottery),
            200,
            body="",
        ),
    ]


async def _open_member_sale(services: Container) -> int:
    """The accepting sale with a member price and half its stock reserved for members."""
    return await open_sale(
        services,
        sku="BENCH-MEMBER",
        stock=ACCEPT_STOCK,
        per_user_limit=MAX_PER_USER_LIMIT,
        member_price=MEMBER_PRICE,
        member_reserved=ACCEPT_STOCK // 2,
    )


async def _open_sales(services: Container, env: BenchEnvironment) -> tuple[int, int, int]:
    accept_item = await open_sale(
        services, sku="BENCH-ACCEPT", stock=ACCEPT_STOCK, per_user_limit=MAX_PER_USER_LIMIT
    )
    # The same sale as a slot of an approved campaign with channels.
    campaign_item = await open_campaign_sale(
        services, sku="BENCH-CAMPAIGN", stock=ACCEPT_STOCK, per_user_limit=MAX_PER_USER_LIMIT
    )
    sold_out_item = await open_sale(services, sku="BENCH-SOLD-OUT", stock=1, per_user_limit=1)
    connection = await connect(env)
    try:
        await naive.create_tables(connection, item_id=NAIVE_ITEM_ID, stock=ACCEPT_STOCK)
    finally:
        await connection.close()
    return accept_item, sold_out_item, campaign_item


async def _open_pass_sale(services: Container) -> tuple[int, int]:
    """The accepting sale entered through a queue (each purchase shows its pass): the
    gate's cost against the open sale. Returns the item and its event."""
    item_id = await open_sale(
        services,
        sku="BENCH-PASS",
        stock=ACCEPT_STOCK,
        per_user_limit=MAX_PER_USER_LIMIT,
        queue=True,
    )
    return item_id, await event_of(services, item_id)


async def _open_queues(services: Container) -> tuple[int, int]:
    """The waiting rooms of the queue targets: one starting hours from now (every join a
    join before the start), one started and admitting one a second (nearly everyone
    waits). Returns their events."""
    join_item = await open_sale(
        services,
        sku="BENCH-QUEUE-JOIN",
        stock=ACCEPT_STOCK,
        per_user_limit=MAX_PER_USER_LIMIT,
        queue=True,
        starts_in=timedelta(hours=3),
    )
    poll_item = await open_sale(
        services,
        sku="BENCH-QUEUE-POLL",
        stock=ACCEPT_STOCK,
        per_user_limit=MAX_PER_USER_LIMIT,
        queue=True,
        starts_in=timedelta(0),
        admit_per_second=1,
    )
    return await event_of(services, join_item), await event_of(services, poll_item)


async def _probe(
    base_url: str, env: BenchEnvironment, all_targets: list[Target], pass_event: int = 0
) -> None:
    """One request per target before loading it, so a misconfigured target (a 401, a
    404, a 403 `not_admitted`) is never measured as if it were the real thing. The probe
    user is not among the polling users: it joins before it polls."""
    token = mint_token(env.settings(), user_id="bench-probe")
    now = now_ms()
    probe_pass = passes.issue(
        passes.pass_secret(env.settings()),
        Pass(pass_event, "bench-probe", now - 60_000, now + 3_600_000),
    )
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers) as client:
        for target in all_targets:
            if target.status == 409:
                # Buy the only unit (the first time): the API process marks it sold out.
                await client.post(target.path, content=BODY)
            if target.method == "GET":
                await client.post(target.path)
            extra = dict([target.header]) if target.header else {}
            if target.passes:
                extra["X-Seckill-Pass"] = probe_pass
            response = await client.request(
                target.method,
                target.path,
                content=target.body or None,
                headers=extra or None,
            )
            if response.status_code != target.status:
                raise RuntimeError(
                    f"{target.label}: expected {target.status}, got "
                    f"{response.status_code} {response.text}"
                )


async def _stock(
    services: Container,
    env: BenchEnvironment,
    accept_item: int,
    campaign_item: int,
    pass_item: int | None = None,
    member_item: int | None = None,
) -> dict[str, int]:
    optional = [i for i in (pass_item, member_item) if i]
    live = await remaining_stock(
        redis=services.redis,
        prefix=env.key_prefix,
        item_ids=[accept_item, campaign_item, *optional],
    )
    connection = await connect(env)
    try:
        naive_left = await naive.stock_left(connection, NAIVE_ITEM_ID)
        # Only grows when the order writer runs beside the API (--with-writer).
        stored = await connection.fetchval(
            "SELECT count(*) FROM orders WHERE item_id = $1", accept_item
        )
    finally:
        await connection.close()
    return {
        "purchase": live[accept_item] or 0,
        "purchase_campaign": live[campaign_item] or 0,
        "purchase_pass": (live[pass_item] or 0) if pass_item else 0,
        "purchase_member": (live[member_item] or 0) if member_item else 0,
        "naive": naive_left,
        "stored": int(stored),
    }


def _taken_check(
    runs: list[TargetRuns], before: int, after: int, connections: int
) -> dict[str, Any]:
    """Stock taken on the server against 2xx answers wrk counted. Requests still in
    flight when a wrk run stops are served but not counted: at most `connections` a run."""
    results = [r for target in runs for r in target.measured + target.warmups]
    answered = sum(r.answered_2xx for r in results)
    taken = before - after
    return {
        "stock_taken": taken,
        "answered_2xx": answered,
        "consistent": answered <= taken <= answered + connections * len(results) + 1,
    }


@dataclass
class TokenFiles:
    """The warm file (users cycle, as the bench's crowd re-sends its tokens) and the cold
    one, consumed from where the last cold run stopped."""

    warm: Path
    cold: Path
    cold_users: int
    cold_used: int = 0
    # X-Seckill-Pass of the warm file's users, line for line (the queue sale's).
    passes: Path | None = None
    # The warm file's users as members.
    members: Path | None = None


async def _load(
    api: ApiProcess, target: Target, options: HttpOptions, tokens: TokenFiles, seconds: float
) -> tuple[LoadResult, float | None, str]:
    """One wrk run; also the API process's CPU time per request during it (µs)."""
    cpu_before = api.cpu_seconds()
    wrk_before = _children_cpu_seconds()
    result, output = await run_wrk(
        base_url=api.base_url,
        path=target.path,
        body=target.body,
        method=target.method,
        token_file=_token_file(target, tokens),
        start=tokens.cold_used % tokens.cold_users if target.cold else 0,
        header=target.header,
        pass_file=tokens.passes if target.passes else None,
        connections=options.connections,
        threads=options.threads,
        seconds=seconds,
    )
    if target.cold:
        # Requests cut off when wrk stops were sent too: at most one per connection.
        tokens.cold_used += result.requests + options.connections
    cpu_after = api.cpu_seconds()
    wrk_cpu_us = (_children_cpu_seconds() - wrk_before) / max(result.requests, 1) * 1e6
    cpu_us = None
    if cpu_before is not None and cpu_after is not None and result.requests:
        cpu_us = (cpu_after - cpu_before) / result.requests * 1e6
    return replace(result, wrk_cpu_us_per_request=wrk_cpu_us), cpu_us, output


def _token_file(target: Target, tokens: TokenFiles) -> Path:
    if target.cold:
        return tokens.cold
    if target.member and tokens.members is not None:
        return tokens.members
    return tokens.warm


def _children_cpu_seconds() -> float:
    """CPU used by this process's finished children: here, the wrk runs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _rounds(
    api: ApiProcess, all_targets: list[Target], options: HttpOptions, tokens: TokenFiles
) -> tuple[dict[str, TargetRuns], dict[str, str]]:
    runs = {t.key: TargetRuns(t) for t in all_targets}
    outputs: dict[str, str] = {}
    for number in range(1, options.rounds + 1):
        # Each round starts one target later, so none always follows the same neighbour.
        shift = (number - 1) % len(all_targets)
        for target in all_targets[shift:] + all_targets[:shift]:
            warmup, _, _ = await _load(api, target, options, tokens, options.warmup_seconds)
            result, cpu_us, output = await _load(api, target, options, tokens, options.seconds)
            runs[target.key].warmups.append(warmup)
            runs[target.key].measured.append(result)
            if cpu_us is not None:
                runs[target.key].cpu_us_per_request.append(cpu_us)
            outputs[f"{target.key}#{number}"] = output
            print(
                f"  round {number}/{options.rounds} {target.label:<26} "
                f"{result.requests_per_second:>9,.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                f"p99 {result.p99_ms:6.2f} ms  CPU µs/req: API {cpu_us or 0:4.0f}, "
                f"wrk {result.wrk_cpu_us_per_request:3.0f}",
                flush=True,
            )
    return runs, outputs


async def measure_http(env: BenchEnvironment, options: HttpOptions, workdir: Path) -> HttpPhase:
    settings = env.settings()
    tokens = TokenFiles(
        warm=write_tokens(
            settings, workdir / "tokens.txt", users=options.users, ttl_seconds=TOKEN_TTL_SECONDS
        ),
        cold=write_tokens(
            settings,
            workdir / "cold-tokens.txt",
            users=options.cold_users,
            ttl_seconds=TOKEN_TTL_SECONDS,
            prefix="bench-cold-user",
        ),
        cold_users=options.cold_users,
    )
    async with build_services(env.settings()) as services, contextlib.AsyncExitStack() as stack:
        accept_item, sold_out_item, campaign_item = await _open_sales(services, env)
        pass_item, pass_event = await _open_pass_sale(services)
        join_event, poll_event = await _open_queues(services)
        lottery = await open_lottery(services)
        member_item = await _open_member_sale(services)
        tokens.members = write_tokens(
            settings,
            workdir / "member-tokens.txt",
            users=options.users,
            ttl_seconds=TOKEN_TTL_SECONDS,
            member=True,
        )
        tokens.passes = write_passes(
            settings,
            workdir / "passes.txt",
            users=options.users,
            event_id=pass_event,
            ttl_seconds=TOKEN_TTL_SECONDS,
        )
        all_targets = [
            t
            for t in targets(
                accept_item=accept_item,
                sold_out_item=sold_out_item,
                campaign_item=campaign_item,
                pass_item=pass_item,
                member_item=member_item,
                join_event=join_event,
                poll_event=poll_event,
                lottery=lottery,
            )
            if options.only is None or t.key in options.only
        ]
        if any(t.key == "queue_poll" for t in all_targets):
            # Before the API process starts: nothing may load the queue without them.
            await hold_places(
                services, event_id=poll_event, users=[user_id(n) for n in range(options.users)]
            )
        api = await stack.enter_async_context(
            api_process(env, workdir / "api.log", workers=options.api_workers)
        )
        if options.with_writer:
            await stack.enter_async_context(order_writer_process(env, workdir / "writer.log"))
        await _probe(api.base_url, env, all_targets, pass_event)
        before = await _stock(services, env, accept_item, campaign_item, pass_item, member_item)
        runs, outputs = await _rounds(api, all_targets, options, tokens)
        after = await _stock(services, env, accept_item, campaign_item, pass_item, member_item)
    # Every accepting purchase target takes from the same item.
    taking = {
        "purchase": [
            "purchase",
            "purchase_framework",
            "purchase_unlimited",
            "purchase_cold",
            "naive_redis",
        ],
        "purchase_campaign": ["purchase_campaign"],
        "purchase_pass": ["purchase_pass"],
        "purchase_member": ["purchase_member"],
        "naive": ["naive"],
    }
    checks: dict[str, Any] = {
        name: _taken_check(
            [runs[t] for t in keys if t in runs], before[name], after[name], options.connections
        )
        for name, keys in taking.items()
        if any(t in runs for t in keys)
    }
    if "purchase" in checks:
        checks["purchase"]["orders_in_postgres"] = after["stored"]
    return HttpPhase(runs=runs, checks=checks, wrk_output=outputs)
