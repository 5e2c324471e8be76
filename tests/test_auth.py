"""Tokens per the contract: HS256 JWTs from any standard library; 401 and 403 as problems."""

import base64
import json
import time
import warnings
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning
from typer.testing import CliRunner

from app.auth import mint_token, verify_token
from app.cli.main import cli
from app.config import Settings, get_settings
from app.errors import Unauthorized
from tests.conftest import TEST_JWT_SECRET
from tests.support.factories import Auth, assert_problem, buy, create_event, item_spec

SHOPPER_ENDPOINT = "/api/v1/orders"
ADMIN_ENDPOINT = "/api/v1/admin/skus"


def _claims(**overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": "shopper-1", "exp": int(time.time()) + 600}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(claims: dict[str, Any], secret: str = TEST_JWT_SECRET, algorithm: str = "HS256") -> str:
    with warnings.catch_warnings():
        # HS512 with the HS256 secret is the point of one case; PyJWT finds the key short.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, secret, algorithm=algorithm)


def _unsigned(claims: dict[str, Any]) -> str:
    """A token with `alg: none` and no signature."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def bad_authorizations() -> dict[str, dict[str, str]]:
    """Headers that must not authenticate, made now (each fails for its own reason only)."""
    return {
        "no-header": {},
        "empty-header": {"Authorization": ""},
        "no-token": {"Authorization": "Bearer"},
        "basic-scheme": {"Authorization": "Basic c2hvcHBlcjpwdw=="},
        "other-scheme": {"Authorization": f"Token {_signed(_claims())}"},
        "malformed": _bearer("not-a-jwt"),
        "malformed-parts": _bearer("a.b.c"),
        "expired": _bearer(_signed(_claims(exp=int(time.time()) - 3600))),
        "forged": _bearer(_signed(_claims(), secret="another-secret-" + "x" * 40)),
        "alg-none": _bearer(_unsigned(_claims())),
        "other-algorithm": _bearer(_signed(_claims(), algorithm="HS512")),
        "missing-exp": _bearer(_signed(_claims(exp=None))),
        "missing-sub": _bearer(_signed(_claims(sub=None))),
        "integer-sub": _bearer(_signed(_claims(sub=42))),
        "empty-sub": _bearer(_signed(_claims(sub=""))),
        "overlong-sub": _bearer(_signed(_claims(sub="u" * 129))),
        "sub-with-nul": _bearer(_signed(_claims(sub="u\x00"))),
        "non-boolean-member": _bearer(_signed(_claims(member="yes"))),
        "non-numeric-exp": _bearer(_signed(_claims(exp="tomorrow"))),
        "not-yet-valid": _bearer(_signed(_claims(nbf=int(time.time()) + 3600))),
        # Neither asyncpg nor Redis can encode a lone surrogate: it used to be a 500.
        "sub-lone-surrogate": _bearer(_signed(_claims(sub="u\ud800"))),
        "numeric-string-exp": _bearer(_signed(_claims(exp=str(int(time.time()) + 600)))),
        "boolean-exp": _bearer(_signed(_claims(exp=True))),
        "numeric-string-iat": _bearer(_signed(_claims(iat=str(int(time.time()))))),
        "fifty-years": _bearer(_signed(_claims(exp=int(time.time()) + 50 * 365 * 86400))),
        "longer-than-the-maximum-from-iat": _bearer(
            _signed(_claims(iat=int(time.time()) - 3600, exp=int(time.time()) + 24 * 3600))
        ),
    }


async def test_a_bad_token_is_unauthorized(client: httpx.AsyncClient) -> None:
    cases = bad_authorizations()
    answers: dict[str, set[tuple[int, str, str]]] = {}
    for case, headers in cases.items():
        responses = [
            await client.get(p, headers=headers) for p in (SHOPPER_ENDPOINT, ADMIN_ENDPOINT)
        ]
        answers[case] = {
            (r.status_code, r.json()["code"], r.headers.get("www-authenticate", ""))
            for r in responses
        }
    assert answers == dict.fromkeys(cases, {(401, "unauthorized", "Bearer")})
    assert_problem(responses[0], 401, "unauthorized")


async def test_a_shopper_token_on_an_admin_endpoint_is_forbidden(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    response = await client.get(ADMIN_ENDPOINT, headers=auth.headers("shopper-1"))
    assert_problem(response, 403, "forbidden")


@pytest.mark.parametrize("role", ["Admin", "operator", ["admin"], ""])
async def test_only_the_exact_admin_role_opens_admin_endpoints(
    client: httpx.AsyncClient, role: Any
) -> None:
    response = await client.get(ADMIN_ENDPOINT, headers=_bearer(_signed(_claims(role=role))))
    assert_problem(response, 403, "forbidden")


async def test_tokens_from_plain_pyjwt_work(client: httpx.AsyncClient) -> None:
    shopper = _signed({"sub": "42", "exp": int(time.time()) + 60})
    assert (await client.get(SHOPPER_ENDPOINT, headers=_bearer(shopper))).status_code == 200
    operator = _signed(
        {"sub": "ops", "exp": int(time.time()) + 60, "iat": int(time.time()), "role": "admin"}
    )
    assert (await client.get(ADMIN_ENDPOINT, headers=_bearer(operator))).status_code == 200


async def test_a_token_just_past_its_expiry_is_within_the_leeway(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    leeway = settings.jwt_leeway_seconds
    assert leeway >= 2, "this test needs a leeway of a couple of seconds"
    token = _signed(_claims(exp=int(time.time()) - 1))
    assert (await client.get(SHOPPER_ENDPOINT, headers=_bearer(token))).status_code == 200


@pytest.mark.parametrize(
    ("claims", "member", "admin"),
    [
        pytest.param({}, False, False, id="shopper"),
        pytest.param({"member": True}, True, False, id="member"),
        pytest.param({"member": False}, False, False, id="not-member"),
        pytest.param({"role": "admin"}, False, True, id="admin"),
    ],
)
def test_claims_become_the_user(
    settings: Settings, claims: dict[str, Any], member: bool, admin: bool
) -> None:
    user = verify_token(settings, _signed(_claims(sub="7", **claims)))
    assert user.id == "7"
    assert user.member is member
    assert user.is_admin is admin


def test_minted_tokens_carry_the_contract_claims(settings: Settings) -> None:
    token = mint_token(settings, user_id="9", member=True, admin=True, ttl_seconds=60)
    claims = jwt.decode(token, TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "9"
    assert claims["member"] is True
    assert claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 60


def test_verify_token_refuses_another_secret(settings: Settings) -> None:
    other = Settings(jwt_secret="a-different-secret-that-is-long-enough-0123456789")
    with pytest.raises(Unauthorized):
        verify_token(settings, mint_token(other, user_id="1"))


async def test_members_buy_early_and_others_wait(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_event(
        client,
        auth,
        starts_in=timedelta(minutes=10),
        member_early_access_seconds=3600,
        items=[item_spec()],
    )
    item_id = event.items[0].id
    member = await buy(client, auth, item_id, user_id="m1", member=True)
    assert member.status_code == 202, member.text
    assert_problem(await buy(client, auth, item_id, user_id="s1"), 409, "not_started")


def test_the_cli_mints_tokens_with_the_configured_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECKILL_JWT_SECRET", TEST_JWT_SECRET)
    monkeypatch.setenv("SECKILL_ENV", "development")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["token", "--user", "42", "--member", "--admin"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    claims = jwt.decode(result.stdout.strip(), TEST_JWT_SECRET, algorithms=["HS256"])
    assert claims["sub"] == "42"
    assert claims["member"] is True
    assert claims["role"] == "admin"
