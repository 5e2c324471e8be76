"""Settings: safe development defaults, and a production start refused when unsafe."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config import (
    DEVELOPMENT_JWT_SECRET,
    DEVELOPMENT_WEBHOOK_SECRET,
    MIN_PRODUCTION_SECRET_LENGTH,
    ConfigurationError,
    Environment,
    Settings,
    get_settings,
)

STRONG_SECRET = "s" * MIN_PRODUCTION_SECRET_LENGTH
DATABASE_URL = "postgresql://seckill@db.internal:5432/seckill"
REDIS_URL = "redis://cache.internal:6379/0"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No SECKILL_ variable from the outer environment, and no cached settings."""
    for name in list(os.environ):
        if name.startswith("SECKILL_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def production_env(monkeypatch: pytest.MonkeyPatch, **overrides: str | None) -> None:
    values: dict[str, str | None] = {
        "SECKILL_ENV": "production",
        "SECKILL_JWT_SECRET": STRONG_SECRET,
        "SECKILL_PAYMENT_WEBHOOK_SECRET": "webhook-" + STRONG_SECRET,
        "SECKILL_DATABASE_URL": DATABASE_URL,
        "SECKILL_REDIS_URL": REDIS_URL,
    }
    values.update(overrides)
    for name, value in values.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


def test_development_defaults_start_with_embedded_servers(clean_env: pytest.MonkeyPatch) -> None:
    settings = Settings()
    assert settings.env is Environment.DEVELOPMENT
    assert settings.database_url is None
    assert settings.redis_url is None
    assert settings.data_dir == Path(".seckill")
    assert settings.jwt_secret.get_secret_value() == DEVELOPMENT_JWT_SECRET
    assert settings.redis_key_prefix == "sk"


def test_environment_variables_with_the_prefix_are_read(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SECKILL_REDIS_KEY_PREFIX", "shop")
    clean_env.setenv("SECKILL_DB_POOL_SIZE", "7")
    clean_env.setenv("SECKILL_DATA_DIR", "/var/lib/seckill")
    clean_env.setenv("SECKILL_JWT_SECRET", "from-the-environment")
    settings = Settings()
    assert settings.redis_key_prefix == "shop"
    assert settings.db_pool_size == 7
    assert settings.data_dir == Path("/var/lib/seckill")
    assert settings.jwt_secret.get_secret_value() == "from-the-environment"


def test_unprefixed_variables_are_ignored(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("JWT_SECRET", "not-ours")
    clean_env.setenv("ENV", "production")
    clean_env.setenv("DATABASE_URL", DATABASE_URL)
    settings = Settings()
    assert settings.env is Environment.DEVELOPMENT
    assert settings.jwt_secret.get_secret_value() == DEVELOPMENT_JWT_SECRET
    assert settings.database_url is None


def test_the_secret_is_not_shown_in_the_settings_repr(clean_env: pytest.MonkeyPatch) -> None:
    production_env(clean_env)
    assert STRONG_SECRET not in repr(Settings())


def test_production_with_a_strong_secret_and_servers_starts(
    clean_env: pytest.MonkeyPatch,
) -> None:
    production_env(clean_env)
    settings = Settings()
    assert settings.env is Environment.PRODUCTION
    assert settings.database_url == DATABASE_URL
    assert settings.redis_url == REDIS_URL


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        pytest.param(None, "SECKILL_JWT_SECRET must be set", id="missing"),
        pytest.param(DEVELOPMENT_JWT_SECRET, "SECKILL_JWT_SECRET must be set", id="default"),
        pytest.param("", "SECKILL_JWT_SECRET must be set", id="empty"),
        pytest.param("s" * (MIN_PRODUCTION_SECRET_LENGTH - 1), "too short", id="short"),
    ],
)
def test_production_refuses_a_weak_secret(
    clean_env: pytest.MonkeyPatch, secret: str | None, message: str
) -> None:
    production_env(clean_env, SECKILL_JWT_SECRET=secret)
    with pytest.raises(ConfigurationError, match=message):
        Settings()


@pytest.mark.parametrize("missing", ["SECKILL_DATABASE_URL", "SECKILL_REDIS_URL"])
def test_production_refuses_to_start_embedded_servers(
    clean_env: pytest.MonkeyPatch, missing: str
) -> None:
    production_env(clean_env, **{missing: None})
    with pytest.raises(ConfigurationError, match=missing):
        Settings()


def test_production_refuses_through_keyword_arguments_too(
    clean_env: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match="SECKILL_JWT_SECRET"):
        Settings(env=Environment.PRODUCTION, database_url=DATABASE_URL, redis_url=REDIS_URL)


def test_seckill_serve_refuses_the_default_secret_in_production(
    clean_env: pytest.MonkeyPatch,
) -> None:
    production_env(clean_env, SECKILL_JWT_SECRET=None)
    result = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert result.exit_code != 0
    assert "refusing to start" in result.output
    assert "SECKILL_JWT_SECRET" in result.output


def test_seckill_serve_refuses_embedded_servers_in_production(
    clean_env: pytest.MonkeyPatch,
) -> None:
    production_env(clean_env, SECKILL_REDIS_URL=None)
    result = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert result.exit_code != 0
    assert "SECKILL_REDIS_URL" in result.output


@pytest.mark.parametrize("webhook_secret", [None, "", DEVELOPMENT_WEBHOOK_SECRET])
def test_production_refuses_the_development_webhook_secret(
    clean_env: pytest.MonkeyPatch, webhook_secret: str | None
) -> None:
    production_env(clean_env, SECKILL_PAYMENT_WEBHOOK_SECRET=webhook_secret)
    with pytest.raises(ConfigurationError, match="SECKILL_PAYMENT_WEBHOOK_SECRET"):
        Settings()


def test_the_cli_names_an_invalid_setting_instead_of_a_traceback(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("SECKILL_ENV", "prod")
    result = CliRunner().invoke(cli, ["token", "--user", "1"])
    assert result.exit_code == 2
    assert "SECKILL_ENV" in result.output
    assert "Traceback" not in result.output
