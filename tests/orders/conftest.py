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
