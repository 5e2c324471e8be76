"""The coupon audit (part of `seckill audit`): do Redis, the claim streams and Postgres
tell the same story about every coupon template?

For each template:
- claimed <= total_quantity: claims stored plus claims still in the stream;
- Redis's `remaining` + claimed == total_quantity (while the template is in Redis);
- nobody over per_user_limit (stored + streamed claims), and Redis's claimer counts,
  which enforce the limit, agree with those claims;
- every claim still in the stream has its `queued` mark, and no other claim has one.
And across templates: every `used` coupon sits on exactly one live order of its owner
(or on a cancelled one whose return is still owed), and every live order that names a
coupon holds it. Grants do not count as claims (they do not take from total_quantity).

Run it at a quiet moment, as the sale audit: Redis is read before Postgres, so a claim
stored meanwhile is found in Postgres and its stream copy skipped.
"""

from collections import Counter
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from app.container import Container
from app.coupons import repository as coupons
from app.flows.audit_report import EXAMPLES
from app.flows.dead_letters import stream_entries
from app.redis import RedisClient
from app.store.coupon_keys import CouponKeys
from app.store.freezes import BEHIND, FROZEN, FROZEN_WHY, why_frozen
from app.store.records import NewClaim, parse_claim


@dataclass(frozen=True, slots=True)
class CouponAudit:
    coupon_id: int
    total: int
    remaining: int | None  # None: not in Redis (an old template), Redis side unchecked
    claimed: int  # stored claims
    in_stream: int  # claims not stored yet
    problems: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CouponAuditReport:
    coupons: tuple[CouponAudit, ...]
    misused: tuple[str, ...]  # used coupons not on exactly one live order, and the like

    @property
    def problems(self) -> list[str]:
        found = [f"coupon {c.coupon_id}: {p}" for c in self.coupons for p in c.problems]
        return found + list(self.misused)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class _RedisSide:
    remaining: int | None
    claimers: dict[str, int]
    claims: list[NewClaim]
    unreadable: int
    queued: set[str]
    frozen_why: str | None = None  # None: not frozen


async def _read_redis(redis: RedisClient, keys: CouponKeys) -> _RedisSide:
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hget(keys.coupon, "remaining")
        pipe.hgetall(keys.claimers)
        pipe.xrange(keys.claims)
        pipe.hkeys(keys.queued)
        pipe.hmget(keys.coupon, [FROZEN, FROZEN_WHY, BEHIND])
        remaining, claimers, entries, queued, flags = await pipe.execute()
    parsed = [parse_claim(fields) for _id, fields in stream_entries(entries)]
    return _RedisSide(
        remaining=None if remaining is None else int(remaining),
        claimers={u: int(n) for u, n in claimers.items()},
        claims=[c for c in parsed if c is not None],
        unreadable=sum(1 for c in parsed if c is None),
        queued=set(queued),
        frozen_why=why_frozen(flags[1], flags[2]) if flags[0] == "1" else None,
    )


def _examples(values: list[str]) -> str:
    shown = ", ".join(values[:EXAMPLES])
    return shown + (f", ... ({len(values)} in all)" if len(values) > EXAMPLES else "")


async def _audit_one(
    session: AsyncSession, books: coupons.CouponBooks, side: _RedisSide
) -> CouponAudit:
    problems: list[str] = []
    if side.frozen_why is not None:
        problems.append(
            f"frozen after Redis lost or rolled back data ({side.frozen_why}): rebuilt from "
            "Postgres, but claims made after the newest stored one may be lost (see the "
            "worker's log); `seckill recover --coupon` resumes claiming"
        )
    stored = await coupons.stored_claim_ids(session, [c.id for c in side.claims])
    repeated = [i for i, n in Counter(c.id for c in side.claims).items() if n > 1]
    if repeated:
        problems.append(f"claims more than once in the stream: {_examples(repeated)}")
    if side.unreadable:
        problems.append(f"{side.unreadable} unreadable claim stream entr(y/ies)")
    waiting = {c.id: c for c in side.claims if c.id not in stored}
    claimed = books.claimed + len(waiting)
    if claimed > books.total_quantity:
        problems.append(f"{claimed} claimed, above the total of {books.total_quantity}")
    if side.remaining is not None and side.remaining + claimed != books.total_quantity:
        problems.append(
            f"Redis has {side.remaining} left, but {claimed} are claimed of {books.total_quantity}"
        )
    over = [f"{user} holds {n}" for user, n in books.over_limit]
    holdings = Counter(await coupons.claims_by_user(session, books.coupon_id))
    holdings.update(c.user_id for c in waiting.values())
    over += [
        f"{user} holds {n} (with queued claims)"
        for user, n in holdings.items()
        if n > books.per_user_limit and (user, n) not in books.over_limit
    ]
    if over:
        problems.append(f"over the per-user limit of {books.per_user_limit}: {_examples(over)}")
    if side.remaining is not None:
        disagree = [
            f"{user}: Redis {side.claimers.get(user, 0)}, claims {holdings.get(user, 0)}"
            for user in sorted(set(side.claimers) | set(holdings))
            if side.claimers.get(user, 0) != holdings.get(user, 0)
        ]
        if disagree:
            problems.append(f"claimer counts disagree with the claims: {_examples(disagree)}")
        unmarked = sorted(set(waiting) - side.queued)
        if unmarked:
            problems.append(f"queued claims without a `queued` mark: {_examples(unmarked)}")
        stale = sorted(side.queued - set(waiting))
        if stale:
            problems.append(f"`queued` marks of claims not in the stream: {_examples(stale)}")
    return CouponAudit(
        coupon_id=books.coupon_id,
        total=books.total_quantity,
        remaining=side.remaining,
        claimed=books.claimed,
        in_stream=len(waiting),
        problems=tuple(problems),
    )


async def audit_coupons(*, services: Container) -> CouponAuditReport:
    prefix = services.settings.redis_key_prefix
    async with services.sessionmaker() as session:
        ids = await coupons.all_coupon_ids(session)
    sides = {i: await _read_redis(services.redis, CouponKeys(prefix, i)) for i in ids}
    async with services.sessionmaker() as session:
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        audited = [
            await _audit_one(session, books, sides[books.coupon_id])
            for books in sorted(await coupons.coupon_books(session, ids), key=lambda b: b.coupon_id)
        ]
        misused = await coupons.misused_coupons(session, limit=EXAMPLES)
    return CouponAuditReport(
        coupons=tuple(audited),
        misused=tuple(
            f"coupon {m.user_coupon_id} (order {m.order_id or '-'}): {m.problem}" for m in misused
        ),
    )


def format_coupon_report(report: CouponAuditReport) -> str:
    if not report.coupons and not report.misused:
        return "coupons: none"
    rows = [("coupon", "total", "remaining", "claimed", "in-stream", "result")]
    for c in report.coupons:
        rows.append(
            (
                str(c.coupon_id),
                str(c.total),
                "-" if c.remaining is None else str(c.remaining),
                str(c.claimed),
                str(c.in_stream),
                "ok" if not c.problems else f"{len(c.problems)} problem(s)",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r[:5], widths, strict=True)) + "  " + r[5]
             for r in rows]  # fmt: skip
    if report.problems:
        lines += ["", "coupon problems:"] + [f"  {p}" for p in report.problems]
    lines.append(
        "coupon audit ok"
        if report.ok
        else f"coupon audit FAILED: {len(report.problems)} problem(s)"
    )
    return "\n".join(lines)
