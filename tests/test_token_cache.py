"""The verified-token cache must never accept what verification would refuse."""

import time

import pytest

from app.auth import TokenVerifier, mint_token
from app.config import Settings
from app.errors import Unauthorized


def test_a_cached_token_still_expires(settings: Settings) -> None:
    strict = settings.model_copy(update={"jwt_leeway_seconds": 0})
    verifier = TokenVerifier(strict)
    token = mint_token(strict, user_id="7", ttl_seconds=1)
    assert verifier.verify(token).id == "7"

    time.sleep(1.1)  # waiting for an expiry, not measuring anything

    with pytest.raises(Unauthorized):
        verifier.verify(token)


def test_a_tampered_token_does_not_hit_the_cache(settings: Settings) -> None:
    verifier = TokenVerifier(settings)
    token = mint_token(settings, user_id="7")
    verifier.verify(token)
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"

    with pytest.raises(Unauthorized):
        verifier.verify(tampered)


def test_the_cache_stays_bounded(settings: Settings) -> None:
    verifier = TokenVerifier(settings.model_copy(update={"token_cache_size": 3}))
    users = [verifier.verify(mint_token(settings, user_id=str(n))).id for n in range(10)]
    assert users == [str(n) for n in range(10)]
    assert len(verifier._verified) <= 3
