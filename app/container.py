"""The container: the process's infrastructure, built once by the lifespan (or by
`build_services` for the CLI and tests), and its dependency alias.

It holds connections and adapters only (settings, engine, sessionmaker, Redis, the
scripts, the sold-out marks, the payment gateway, the token verifier); domain
collaborators are passed explicitly as keyword arguments, never looked up here.
"""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth import TokenVerifier
from app.config import Settings
from app.gateways.payment import PaymentGateway
from app.outages import BackendWatch
from app.redis import RedisClient
from app.store.acks import AckPolicy
from app.store.batches import ScriptBatches
from app.store.generations import SeenGenerations
from app.store.keys import GlobalKeys
from app.store.lottery import DrawReply, draw_batches
from app.store.purchase import PurchaseReply, purchase_batches
from app.store.queue import QueueReply, queue_batches
from app.store.refused_tries import RefusedTries
from app.store.sale_state import StockReads
from app.store.scripts import Scripts
from app.store.sold_out import SoldOutMarks


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: RedisClient
    scripts: Scripts
    sold_out: SoldOutMarks
    # Charges and refunds; the simulated gateway until a real one is plugged in.
    gateway: PaymentGateway
    # Replicated acceptance (SECKILL_REDIS_MIN_REPLICA_ACKS), None when off.
    acks: AckPolicy | None = None
    # On a cluster: at most redis_max_connections hot-path calls at once (see purchase).
    redis_gate: asyncio.Semaphore | None = field(init=False)
    # Reachability of Redis (the purchase circuit breaker) and Postgres, as seen here.
    watch: BackendWatch = field(init=False)
    tokens: TokenVerifier = field(init=False)
    # Attempts answered from a sold-out mark, for the live stats.
    refused_tries: RefusedTries = field(init=False)
    # Each sale's newest generation seen accepted here: Redis behind it froze the item.
    generations: SeenGenerations = field(init=False, default_factory=SeenGenerations)
    # The same for each coupon's claim counters (claim.lua).
    claim_generations: SeenGenerations = field(init=False, default_factory=SeenGenerations)
    # The same for each promotion's daily places (promotion.lua).
    promotion_generations: SeenGenerations = field(init=False, default_factory=SeenGenerations)
    # The same for each event's waiting room (queue.lua).
    queue_generations: SeenGenerations = field(init=False, default_factory=SeenGenerations)
    # The same for each lottery's counters (lottery_draw.lua).
    lottery_generations: SeenGenerations = field(init=False, default_factory=SeenGenerations)
    # Each lottery's terms and prizes, read once per process (they never change).
    lotteries: dict[int, Any] = field(init=False, default_factory=dict)
    # Starts a background job (a bulk grant) by id in this process; set by whoever builds
    # the container (app/processes/services.py), since running jobs is a flow's.
    start_job: Callable[[int], None] | None = field(init=False, default=None)
    # Purchases, and a waiting room's joins and polls, of one loop turn in one round trip per
    # script (single Redis, SECKILL_PURCHASE_BATCH_MAX).
    purchase_batches: ScriptBatches[PurchaseReply] | None = field(init=False)
    queue_batches: ScriptBatches[QueueReply] | None = field(init=False)
    lottery_batches: ScriptBatches[DrawReply] | None = field(init=False)
    # A loop turn's waiting-room polls of one event share one read of its items' stock.
    stock_reads: StockReads = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = TokenVerifier(self.settings)
        self.refused_tries = RefusedTries(self.settings.redis_key_prefix)
        self.watch = BackendWatch.from_settings(self.settings)
        self.redis_gate = (
            asyncio.Semaphore(self.settings.redis_max_connections)
            if self.settings.redis_cluster
            else None
        )
        self.stock_reads = StockReads(self.redis, self.settings.redis_key_prefix)
        self.purchase_batches = self.queue_batches = self.lottery_batches = None
        if isinstance(self.redis, Redis) and self.settings.purchase_batch_max:
            most = self.settings.purchase_batch_max
            self.purchase_batches = purchase_batches(self.redis, self.scripts, max_calls=most)
            self.queue_batches = queue_batches(self.redis, self.scripts, max_calls=most)
            self.lottery_batches = draw_batches(self.redis, self.scripts, max_calls=most)

    @property
    def keys(self) -> GlobalKeys:
        return GlobalKeys(self.settings.redis_key_prefix)


async def get_container(request: Request) -> Container:  # async: no thread-pool hop
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]
