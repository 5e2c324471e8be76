"""Settings: safe development defaults, and a production start refused when unsafe."""

import os
import re
import subprocess
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from app.cli.main import cli
from app.config import (
    DEVELOPMENT_JWT_SECRET,
    DEVELOPMENT_NOTIFY_SECRET,
    DEVELOPMENT_PASS_SECRET,
    DEVELOPMENT_WEBHOOK_SECRET,
    MIN_PRODUCTION_SECRET_LENGTH,
    PUBLIC_SECRETS,
    ConfigurationError,
    Environment,
    Rate,
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
        "SECKILL_PASS_SECRET": "pass-" + STRONG_SECRET,
        "SECKILL_METRICS_TOKEN": "metrics-" + STRONG_SECRET,
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


@pytest.mark.parametrize(
    "pass_secret",
    [None, "", DEVELOPMENT_PASS_SECRET, "s" * (MIN_PRODUCTION_SECRET_LENGTH - 1)],
)
def test_production_refuses_a_weak_pass_secret(
    clean_env: pytest.MonkeyPatch, pass_secret: str | None
) -> None:
    """A known pass key would let anyone sign themselves into a queue or draw sale."""
    production_env(clean_env, SECKILL_PASS_SECRET=pass_secret)
    with pytest.raises(ConfigurationError, match="SECKILL_PASS_SECRET"):
        Settings()


@pytest.mark.parametrize(
    "notify_secret",
    [None, "", DEVELOPMENT_NOTIFY_SECRET, "s" * (MIN_PRODUCTION_SECRET_LENGTH - 1)],
)
def test_production_delivering_reminders_refuses_a_weak_notify_secret(
    clean_env: pytest.MonkeyPatch, notify_secret: str | None
) -> None:
    """A receiver trusts what the secret signs: a known one lets anyone send reminders in
    the shop's name. Without a webhook URL nothing is signed, and nothing is asked."""
    production_env(clean_env, SECKILL_NOTIFY_WEBHOOK_SECRET=notify_secret)
    assert Settings().notify_webhook_url is None
    clean_env.setenv("SECKILL_NOTIFY_WEBHOOK_URL", "https://push.internal/reminders")
    with pytest.raises(ConfigurationError, match="SECKILL_NOTIFY_WEBHOOK_SECRET"):
        Settings()
    clean_env.setenv("SECKILL_NOTIFY_WEBHOOK_SECRET", "notify-" + STRONG_SECRET)
    assert Settings().notify_webhook_url == "https://push.internal/reminders"


def test_a_reminder_lease_must_outlast_a_post(clean_env: pytest.MonkeyPatch) -> None:
    """Else a post still in flight would be taken over and posted again by another worker."""
    clean_env.setenv("SECKILL_NOTIFY_WEBHOOK_TIMEOUT_SECONDS", "30")
    clean_env.setenv("SECKILL_REMINDER_LEASE_SECONDS", "30")
    with pytest.raises(ValidationError, match="SECKILL_REMINDER_LEASE_SECONDS"):
        Settings()
    clean_env.setenv("SECKILL_REMINDER_LEASE_SECONDS", "31")
    assert Settings().reminder_lease_seconds == 31


@pytest.mark.parametrize("metrics_token", [None, ""])
def test_production_refuses_to_start_without_a_metrics_token(
    clean_env: pytest.MonkeyPatch, metrics_token: str | None
) -> None:
    """Without one, /metrics (stock, queues, sales by outcome) would answer anyone behind
    the load balancer."""
    production_env(clean_env, SECKILL_METRICS_TOKEN=metrics_token)
    with pytest.raises(ConfigurationError, match="SECKILL_METRICS_TOKEN must be set"):
        Settings()
    result = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert result.exit_code != 0
    assert "SECKILL_METRICS_TOKEN" in result.output


def test_the_cli_names_an_invalid_setting_instead_of_a_traceback(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("SECKILL_ENV", "prod")
    result = CliRunner().invoke(cli, ["token", "--user", "1"])
    assert result.exit_code == 2
    assert "SECKILL_ENV" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/second", Rate(10, 1)),
        ("3/minute", Rate(3, 60)),
        (" 7 / Second ", Rate(7, 1)),
        ("off", None),
        ("OFF", None),
    ],
)
def test_rate_settings(clean_env: pytest.MonkeyPatch, text: str, expected: Rate | None) -> None:
    clean_env.setenv("SECKILL_RATE_LIMIT_PER_USER", text)
    clean_env.setenv("SECKILL_RATE_LIMIT_PER_ADDRESS", text)
    settings = Settings()
    assert settings.rate_limit_per_user == expected
    assert settings.rate_limit_per_address == expected


@pytest.mark.parametrize("text", ["0/second", "10/hour", "10", "ten/second", "-1/minute", ""])
def test_bad_rate_settings_are_refused(clean_env: pytest.MonkeyPatch, text: str) -> None:
    clean_env.setenv("SECKILL_RATE_LIMIT_PER_USER", text)
    with pytest.raises(ValidationError, match="N/second"):
        Settings()


def test_trusted_proxies_are_a_comma_separated_list(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("SECKILL_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7,::1")
    assert [str(n) for n in Settings().trusted_proxies] == ["10.0.0.0/8", "192.0.2.7/32", "::1/128"]
    clean_env.setenv("SECKILL_TRUSTED_PROXIES", "10.0.0.0/8, nonsense")
    with pytest.raises(ValidationError):
        Settings()


# Where a secret is spelled out: `jwt_secret="..."`, `TEST_JWT_SECRET = "..."`,
# `SECKILL_JWT_SECRET: ...`, `SECKILL_PAYMENT_WEBHOOK_SECRET=...` and the like.
_SPELLED_OUT = re.compile(
    r"""(?ix) (?:secret|token)["']?\s*[:=]\s*(?:SecretStr\()?\s*["']?"""
    r"""(?P<value>[^\s"'$(){}\[\],]""" + f"{{{MIN_PRODUCTION_SECRET_LENGTH},}})"
)
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def _spelled_out_secrets() -> dict[str, set[str]]:
    root = Path(__file__).resolve().parent.parent
    files = subprocess.run(
        ["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    found: dict[str, set[str]] = {}
    for name in files:
        if not name.endswith((".py", ".md", ".yml", ".yaml", ".sh", ".conf", ".toml", ".env")):
            continue
        text = (root / name).read_text(errors="replace")
        for match in _SPELLED_OUT.finditer(text):
            found.setdefault(match.group("value"), set()).add(name)
    return found


def test_every_secret_spelled_out_in_the_repository_is_refused_in_production(
    clean_env: pytest.MonkeyPatch,
) -> None:
    found = _spelled_out_secrets()
    # The scan itself finds what it should.
    assert DEVELOPMENT_JWT_SECRET in found
    assert "test-secret-that-is-long-enough-for-hs256-0123456789" in found
    for value, where in sorted(found.items()):
        if value.startswith("SECKILL_") or _DOTTED_NAME.fullmatch(value):
            continue  # a name, not a value
        production_env(clean_env, SECKILL_JWT_SECRET=value)
        with pytest.raises(ConfigurationError, match="public"):
            Settings()
        assert value in PUBLIC_SECRETS, f"{value!r} ({', '.join(sorted(where))})"


@pytest.mark.parametrize(
    "variable", ["SECKILL_PAYMENT_WEBHOOK_SECRET", "SECKILL_METRICS_TOKEN", "SECKILL_JWT_SECRET"]
)
@pytest.mark.parametrize(
    "value", [DEVELOPMENT_WEBHOOK_SECRET, "change-me-webhook-secret", "w" * 31, "é" * 15]
)
def test_production_refuses_public_or_short_secrets_everywhere(
    clean_env: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    production_env(clean_env, **{variable: value})
    with pytest.raises(ConfigurationError, match=variable):
        Settings()


def test_production_names_every_problem_at_once(clean_env: pytest.MonkeyPatch) -> None:
    """An operator learns everything to fix from one refused start, not one per start."""
    production_env(
        clean_env,
        SECKILL_JWT_SECRET=None,
        SECKILL_PAYMENT_WEBHOOK_SECRET="w" * 31,
        SECKILL_METRICS_TOKEN=None,
        SECKILL_REDIS_URL=None,
    )
    with pytest.raises(ConfigurationError) as refused:
        Settings()
    message = str(refused.value)
    assert "SECKILL_JWT_SECRET must be set" in message
    assert "SECKILL_PAYMENT_WEBHOOK_SECRET is too short" in message
    assert "SECKILL_METRICS_TOKEN must be set" in message
    assert "SECKILL_REDIS_URL must be set" in message
    result = CliRunner().invoke(cli, ["serve", "--port", "1"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for name in ("JWT_SECRET", "PAYMENT_WEBHOOK_SECRET", "METRICS_TOKEN", "REDIS_URL"):
        assert f"SECKILL_{name}" in lines[0]


def test_shipping_holidays_are_a_list_of_dates(clean_env: pytest.MonkeyPatch) -> None:
    assert Settings().shipping_holidays == ()
    clean_env.setenv("SECKILL_SHIPPING_HOLIDAYS", " 2027-01-01, 2026-12-25 ,2027-01-01")
    assert Settings().shipping_holidays == (date(2026, 12, 25), date(2027, 1, 1))


@pytest.mark.parametrize("value", ["2026-12-32", "christmas", "2026-12-25T00:00:00+01:00"])
def test_a_shipping_holiday_that_is_not_a_date_is_refused(
    clean_env: pytest.MonkeyPatch, value: str
) -> None:
    clean_env.setenv("SECKILL_SHIPPING_HOLIDAYS", f"2026-12-24,{value}")
    with pytest.raises(ValidationError, match="shipping_holidays"):
        Settings()
