"""A crowd of buyers through the API, for the live-sale tests."""

import asyncio
import itertools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from tests.support.factories import Auth


@dataclass(frozen=True, slots=True)
class Attempt:
    user_id: str
    quantity: int
    status: int
    code: str | None
    order_id: str | None


@dataclass
class Crowd:
    """Buyers `u0`..`u<users-1>` trying items at random, `concurrency` at a time."""

    client: httpx.AsyncClient
    auth: Auth
    item_ids: list[int]
    users: int
    quantities: tuple[int, ...] = (1, 1, 2)
    concurrency: int = 60
    seed: int = 11

    def __post_init__(self) -> None:
        self.results: list[Attempt] = []
        self._headers = {f"u{n}": self.auth.headers(f"u{n}") for n in range(self.users)}
        self._rng = random.Random(self.seed)

    async def _attempt(self, user: str, item_id: int, quantity: int) -> None:
        response = await self.client.post(
            f"/api/v1/items/{item_id}/purchase",
            json={"quantity": quantity},
            headers=self._headers[user],
        )
        body = response.json()
        self.results.append(
            Attempt(
                user_id=user,
                quantity=quantity,
                status=response.status_code,
                code=body.get("code"),
                order_id=body.get("order_id"),
            )
        )

    def _plan(self) -> "itertools.count[int]":
        return itertools.count()

    def _next(self, n: int) -> tuple[str, int, int]:
        # Every user once in the first `users` attempts, then at random.
        user = f"u{n}" if n < self.users else f"u{self._rng.randrange(self.users)}"
        return user, self._rng.choice(self.item_ids), self._rng.choice(self.quantities)

    async def run(self, attempts: int) -> list[Attempt]:
        """Exactly `attempts` attempts."""
        numbers = iter(range(attempts))

        async def worker() -> None:
            for n in numbers:
                await self._attempt(*self._next(n))

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return self.results

    async def run_until(self, stop: asyncio.Event) -> list[Attempt]:
        """Attempts until `stop` is set."""
        numbers = itertools.count()

        async def worker() -> None:
            while not stop.is_set():
                await self._attempt(*self._next(next(numbers)))
                # A refusal from a sold-out mark never waits on I/O; let others run.
                await asyncio.sleep(0)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return self.results

    async def answered(self, more: int) -> Callable[[], Awaitable[bool]]:
        """A check that holds once `more` further attempts have been answered."""
        target = len(self.results) + more

        async def check() -> bool:
            return len(self.results) >= target

        return check
