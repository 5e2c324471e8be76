"""Settings a test can adjust: parametrize `settings_overrides` (for example a payment
timeout of one second), and the app, services and worker of that test all use them."""

from typing import Any

import pytest

from app.config import Settings


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    return {}


@pytest.fixture
def settings(settings: Settings, settings_overrides: dict[str, Any]) -> Settings:
    return settings.model_copy(update=settings_overrides)


# The app served by uvicorn on a real socket (the claim crowd goes through real HTTP).
from tests.seckill.test_crowd import http_base_url as http_base_url  # noqa: E402
