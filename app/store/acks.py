"""Replicated acceptance: with SECKILL_REDIS_MIN_REPLICA_ACKS = N > 0, a 202 means the
order reached N replicas (and, where the server has WAITAOF, their append-only files),
so it survives the loss of the Redis primary.

WAIT / WAITAOF wait for the writes *of the connection they are sent on*, so each is sent
in one pipeline with the write it confirms (on a cluster, to the item's node):

- an accepted purchase: [EVALSHA purchase.lua, WAIT] in one round trip;
- a replayed one (a retry after a 503, answered by purchase.lua or from the sold-out
  mark): the first attempt's write came from another connection, so a small write to
  the item's slot is sent first: the replication stream is ordered, and a replica that
  has it has everything the primary wrote before it, the first attempt included. The
  idempotency record is read again first on that connection, so the server that
  confirms is one that has the order.

If fewer replicas confirm within `SECKILL_REDIS_REPLICA_ACK_TIMEOUT_MS`, the purchase
answers 503 `recovering`: the order exists on the primary but might not survive its
loss, so the client is not told "accepted"; its retry with the same Idempotency-Key
gets the order id once the replicas have it (or a fresh decision, if a failover lost it).
"""

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import Pipeline
from redis.exceptions import (
    AskError,
    ClusterDownError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)

from app.config import Settings
from app.redis import as_text, create_redis
from app.store.keys import ItemKeys
from app.store.purchase import PurchaseReply, parse_purchase_reply
from app.store.records import parse_idempotency_record
from app.store.scripts import ScriptCall, Scripts

logger = logging.getLogger(__name__)

# What a node says when the item's slot is no longer (or not yet) served there.
TOPOLOGY_ERRORS = ("MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "READONLY")
TOPOLOGY_ERROR_CLASSES = (AskError, TryAgainError, ClusterDownError, ReadOnlyError)

# How long the replay marker lives (it only has to be written, never read).
MARKER_TTL_MS = 60_000


@dataclass(frozen=True)
class AckPolicy:
    replicas: int
    timeout_ms: int
    # WAITAOF (Redis 7.2+): also wait for the AOF fsync, locally if AOF is on here.
    waitaof: bool
    local_fsync: bool
    settings: Settings
    # On a cluster: a plain client per node, for the pipelines the cluster client
    # refuses (it blocks EVALSHA in pipelines; WAIT must share the script's connection).
    nodes: dict[str, Redis] = field(default_factory=dict)

    def confirm(self, pipe: Any) -> None:
        """Queue the WAIT/WAITAOF for the writes queued before it."""
        if self.waitaof:
            pipe.waitaof(1 if self.local_fsync else 0, self.replicas, self.timeout_ms)
        else:
            pipe.wait(self.replicas, self.timeout_ms)

    def node_client(self, redis: Redis | RedisCluster, key: str) -> Redis:
        """The client that reaches the server holding `key`."""
        if not isinstance(redis, RedisCluster):
            return redis
        node = redis.get_node_from_key(key)
        if node is None:
            raise SlotNotCoveredError(f"no node serves {key!r} right now")
        client = self.nodes.get(node.name)
        if client is None:
            single = create_redis(
                self.settings.model_copy(update={"redis_cluster": False}),
                f"redis://{node.host}:{node.port}/0",
            )
            assert isinstance(single, Redis)
            client = self.nodes[node.name] = single
        return client

    async def aclose(self) -> None:
        for client in self.nodes.values():
            await client.aclose()
        self.nodes.clear()

    def confirmed(self, reply: Any) -> bool:
        if self.waitaof:
            local, replicas = int(reply[0]), int(reply[1])
            return replicas >= self.replicas and (local >= 1 or not self.local_fsync)
        return int(reply) >= self.replicas


async def ack_policy(redis: Redis | RedisCluster, settings: Settings) -> AckPolicy | None:
    """The policy for this server, or None when replicated acceptance is off."""
    if settings.redis_min_replica_acks == 0:
        return None
    version: tuple[int, ...] = (0,)
    aof = False
    # On a cluster, one node speaks for all (they run the same version and settings).
    one: dict[str, Any] = (
        {"target_nodes": RedisCluster.RANDOM} if isinstance(redis, RedisCluster) else {}
    )
    try:
        info = await redis.info("server", **one)
        version = tuple(int(p) for p in str(info.get("redis_version", "0")).split("."))
        persistence = await redis.info("persistence", **one)
        aof = bool(int(persistence.get("aof_enabled", 0)))
    except (RedisError, ValueError):
        logger.warning("could not read the Redis version; using WAIT", exc_info=True)
    policy = AckPolicy(
        replicas=settings.redis_min_replica_acks,
        timeout_ms=settings.redis_replica_ack_timeout_ms,
        waitaof=version >= (7, 2),
        local_fsync=aof,
        settings=settings,
    )
    logger.info(
        "replicated acceptance: a purchase is accepted once %d replica(s) have it (%s)",
        policy.replicas,
        "WAITAOF" if policy.waitaof else "WAIT; this Redis has no WAITAOF (7.2+)",
    )
    return policy


async def purchase_replicated(
    *,
    redis: Redis | RedisCluster,
    scripts: Scripts,
    policy: AckPolicy,
    call: ScriptCall,
) -> tuple[PurchaseReply, bool]:
    """purchase.lua (`call` from purchase_script_call) and the wait in one round trip:
    (the script's reply, confirmed?)."""
    keys, args = call
    async with _on_node(redis, policy, keys[0]) as pipe:
        # Queued only (run_purchase parses a reply; a pipeline's comes from execute()).
        await scripts.purchase(keys=keys, args=args, client=pipe)
        policy.confirm(pipe)
        reply, acked = await pipe.execute()
    return parse_purchase_reply(reply), policy.confirmed(acked)


async def confirm_replicated(
    *,
    redis: Redis | RedisCluster,
    policy: AckPolicy,
    keys: ItemKeys,
    record: str,
    order_id: str,
) -> bool:
    """For a replayed purchase: is `order_id`, the order its idempotency record `record`
    named when it was read, on the replicas? The record is read again in the same round
    trip as the marker and the wait, on one connection: a replay read from a primary
    since replaced by one that lacks the order is not confirmed by the new one's
    replicas."""
    async with _on_node(redis, policy, keys.sale) as pipe:
        pipe.get(record)
        pipe.set(f"{keys.tag}:acked", "1", px=MARKER_TTL_MS)
        policy.confirm(pipe)
        found, _set, acked = await pipe.execute()
    first = as_text(found)
    if not first or parse_idempotency_record(first).order_id != order_id:
        return False
    return policy.confirmed(acked)


@contextlib.asynccontextmanager
async def _on_node(
    redis: Redis | RedisCluster, policy: AckPolicy, key: str
) -> AsyncIterator[Pipeline]:
    """A pipeline to the server holding `key`. On a cluster, a failure there (a dead
    node, a slot that moved) makes the cluster client re-read the topology, so the
    client's retry goes to the new owner."""
    try:
        async with policy.node_client(redis, key).pipeline(transaction=False) as pipe:
            yield pipe
    except ResponseError as exc:
        # redis-py raises its own class for MOVED, ASK, TRYAGAIN, CLUSTERDOWN and READONLY
        # (the code left out of the message); a pipeline prefixes the server's error with
        # the failing command. MOVED: a former master back as a replica, say.
        said = str(exc).rsplit("caused error: ", 1)[-1]
        if not (isinstance(exc, TOPOLOGY_ERROR_CLASSES) or said.startswith(TOPOLOGY_ERRORS)):
            raise
        await _reread_topology(redis)
        # The script did not run on this node: nothing was taken there.
        raise TryAgainError(f"the item's slot moved ({exc}); retry") from exc
    except (RedisError, OSError):
        await _reread_topology(redis)
        raise


async def _reread_topology(redis: Redis | RedisCluster) -> None:
    if isinstance(redis, RedisCluster):
        with contextlib.suppress(Exception):
            await redis.nodes_manager.initialize()
