"""The Redis client factory (the Lua scripts' registry is app/store/scripts.py)."""

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.config import Settings

# The hot store's client: one server (with replicas) or a Redis Cluster.
RedisClient = Redis | RedisCluster


def create_redis(settings: Settings, url: str) -> RedisClient:
    if settings.redis_cluster:
        return create_cluster_client(settings, url)
    # A blocking pool makes a burst wait briefly for a free connection instead of failing
    # with "Too many connections" the moment the pool is full.
    pool = BlockingConnectionPool.from_url(
        url,
        decode_responses=True,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_pool_timeout_seconds,
        health_check_interval=30,
        # Short, explicit timeouts: a stalled Redis answers 503 quickly instead of
        # hanging the crowd (redis-py's default is 5 s, older versions have none).
        socket_timeout=settings.redis_socket_timeout_seconds,
        socket_connect_timeout=settings.redis_connect_timeout_seconds,
        # Never resend a command on its own: a purchase script that timed out may have
        # run, and resending it without an Idempotency-Key would take the stock twice.
        # The client retries, with its Idempotency-Key; the API answers 503.
        retry=Retry(NoBackoff(), 0),
    )
    return Redis.from_pool(pool)


def create_cluster_client(settings: Settings, url: str) -> RedisCluster:
    """redis-py's cluster client: `url` names any one node, the rest is discovered.
    Every script's keys share one hash tag, so each runs on the item's node."""
    return RedisCluster.from_url(
        url,
        decode_responses=True,
        max_connections=settings.redis_max_connections,
        socket_timeout=settings.redis_socket_timeout_seconds,
        socket_connect_timeout=settings.redis_connect_timeout_seconds,
        # As above: never resend on its own (a failed command makes the client re-read
        # the topology before the next one, so a failover costs one 503 per process).
        retry=Retry(NoBackoff(), 0),
    )


def as_text(value: bytes | str | None) -> str | None:
    """A reply as text (the client decodes responses; this narrows the type)."""
    if isinstance(value, bytes):
        return value.decode()
    return value
