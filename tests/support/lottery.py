"""Lotteries for tests: a request body, one made through the API, and one loaded straight
into Redis through the sale store's wrappers (for the script tests)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
from redis.asyncio import Redis

from app.moments import from_ms
from app.store.generations import UNSEEN, Generation
from app.store.lottery import DrawReply, draw_script_call, random_pick, run_draw
from app.store.lottery_keys import LotteryKeys
from app.store.lottery_load import LotteryCounters, LotteryDay, LotteryTerms, load_lottery
from app.store.order_ids import new_draw_id
from app.store.scripts import Scripts
from app.store.warmup import Build, Built
from tests.support.factories import Auth
from tests.support.lua import GROUP, HOUR_MS, MINUTE_MS, redis_now_ms

DAY = date(2026, 12, 6)


def prize_spec(
    name: str = "Mug", *, kind: str = "item", quantity: Any = 1, weight: Any = 1, **extra: Any
) -> dict[str, Any]:
    return {"name": name, "kind": kind, "quantity": quantity, "weight": weight, **extra}


def lottery_spec(
    *,
    prizes: Sequence[dict[str, Any]] | None = None,
    draws_per_user_per_day: int = 3,
    starts_in: timedelta = timedelta(minutes=-1),
    lasts: timedelta = timedelta(hours=1),
    **extra: Any,
) -> dict[str, Any]:
    starts_at = datetime.now(UTC) + starts_in
    return {
        "name": "Lucky draw",
        "starts_at": starts_at.isoformat(),
        "ends_at": (starts_at + lasts).isoformat(),
        "draws_per_user_per_day": draws_per_user_per_day,
        "prizes": list(prizes) if prizes is not None else [prize_spec()],
        **extra,
    }


async def create_lottery(client: httpx.AsyncClient, auth: Auth, **spec: Any) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/admin/lotteries", json=lottery_spec(**spec), headers=auth.admin()
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


@dataclass(frozen=True, slots=True)
class LuaLottery:
    """A lottery loaded straight into Redis (lottery id 4), drawn through its wrapper."""

    redis: Redis
    scripts: Scripts
    keys: LotteryKeys

    async def draw(
        self,
        user_id: str = "u1",
        *,
        day: date = DAY,
        pick: int | None = None,
        seen: Generation = UNSEEN,
        redis: Redis | None = None,
    ) -> DrawReply:
        call = draw_script_call(
            keys=self.keys,
            user_id=user_id,
            draw_id=new_draw_id(self.keys.lottery_id),
            day=day,
            day_expires_at=datetime.now(UTC) + timedelta(days=2),
            pick=random_pick() if pick is None else pick,
            seen=seen,
        )
        return await run_draw(redis or self.redis, self.scripts, call)

    async def left(self) -> dict[int, int]:
        return {int(k): int(v) for k, v in (await self.redis.hgetall(self.keys.stock)).items()}

    async def load(
        self,
        *,
        weights: Sequence[tuple[int, int]],
        left: Mapping[int, int],
        per_day: int = 2,
        no_win: int = 0,
        starts_ms: int,
        ends_ms: int,
        drawn: Mapping[str, int] | None = None,
        checked_in: Sequence[str] = (),
        build: Build = Build.IF_NEVER_BUILT,
        min_epoch: int = 0,
    ) -> Built:
        return await load_lottery(
            redis=self.redis,
            scripts=self.scripts,
            keys=self.keys,
            terms=LotteryTerms(
                starts_at=from_ms(starts_ms),
                ends_at=from_ms(ends_ms),
                draws_per_user_per_day=per_day,
                no_prize_weight=no_win,
                weights=weights,
            ),
            group=GROUP,
            counters=LotteryCounters(
                left=left,
                days=[
                    LotteryDay(
                        day=DAY,
                        expires_at=datetime.now(UTC) + timedelta(days=2),
                        drawn=drawn or {},
                        checked_in=checked_in,
                    )
                ],
            ),
            build=build,
            min_epoch=min_epoch,
        )


async def open_lottery(
    redis: Redis,
    prefix: str,
    *,
    weights: Sequence[tuple[int, int]] = ((1, 1), (2, 1)),
    left: Mapping[int, int] | None = None,
    per_day: int = 2,
    no_win: int = 0,
    starts_ms: int | None = None,
    ends_ms: int | None = None,
    drawn: Mapping[str, int] | None = None,
    checked_in: Sequence[str] = (),
) -> LuaLottery:
    now = await redis_now_ms(redis)
    lottery = LuaLottery(redis, await Scripts.load(redis), LotteryKeys(prefix, 4))
    await lottery.load(
        weights=weights,
        left=left if left is not None else {prize_id: 1 for prize_id, _ in weights},
        per_day=per_day,
        no_win=no_win,
        starts_ms=now - MINUTE_MS if starts_ms is None else starts_ms,
        ends_ms=now + HOUR_MS if ends_ms is None else ends_ms,
        drawn=drawn,
        checked_in=checked_in,
    )
    return lottery
