"""The hot path's HS256 verifier (app.auth.Hs256) against PyJWT, its reference: the same
answer on every token, the 401's detail included, over generated and hostile tokens.

The reference is the decoding the service used before (jwt.decode with the HS256 pin,
`sub` and `exp` required, the leeway), followed by the same rules of this service
(app.auth.user_of). Times are kept at least two seconds from every boundary (expiry,
leeway, lifetime), so the two clocks read a few microseconds apart cannot disagree.
"""

import base64
import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest

from app.auth import Hs256, User, _Refused, _segment, hs256_of, user_of
from app.config import Settings
from app.errors import Unauthorized
from tests.conftest import TEST_JWT_SECRET

SETTINGS = Settings(jwt_secret=TEST_JWT_SECRET, jwt_leeway_seconds=5)
LEEWAY = SETTINGS.jwt_leeway_seconds
MAX_LIFETIME = SETTINGS.jwt_max_lifetime_seconds
OTHER_SECRET = b"another-secret-that-is-long-enough-for-hs256-000000"
HS256_HEADER = {"alg": "HS256", "typ": "JWT"}

# An answer: the user and the token's end, or the refusal's detail (or an exception's type
# for input neither should ever see, such as a str that UTF-8 cannot encode).
Answer = tuple[User, float] | str


def reference(token: str) -> Answer:
    """The service's answer before Hs256: PyJWT's decode, then this service's rules."""
    try:
        claims = jwt.decode(
            token,
            TEST_JWT_SECRET,
            algorithms=["HS256"],
            options={"require": ["sub", "exp"]},
            leeway=LEEWAY,
        )
        return user_of(SETTINGS, claims)
    except jwt.ExpiredSignatureError:
        return "The token has expired."
    except jwt.InvalidTokenError as exc:
        return f"The token is invalid: {exc}."
    except Unauthorized as exc:
        return exc.detail
    except Exception as exc:  # noqa: BLE001 - the type is the answer compared
        return f"raised {type(exc).__name__}"


def answer(verifier: Hs256, token: str) -> Answer:
    try:
        return user_of(SETTINGS, verifier.claims(token))
    except Unauthorized as exc:
        return exc.detail
    except Exception as exc:  # noqa: BLE001 - the type is the answer compared
        return f"raised {type(exc).__name__}"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def as_json(value: Any) -> bytes:
    """Raw bytes stay as given (non-JSON, duplicate keys, odd encodings)."""
    return value if isinstance(value, bytes) else json.dumps(value).encode()


def signed(
    payload: Any,
    header: Any = None,
    *,
    key: bytes = TEST_JWT_SECRET.encode(),
    digest: Callable[..., Any] = hashlib.sha256,
) -> str:
    signing_input = (
        f"{b64(as_json(HS256_HEADER if header is None else header))}.{b64(as_json(payload))}"
    )
    signature = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def claims(now: int, **overrides: Any) -> dict[str, Any]:
    """Valid claims, with overrides (None: the claim left out)."""
    base: dict[str, Any] = {"sub": "shopper-1", "iat": now, "exp": now + 600}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def claim_variants(now: int) -> Iterator[Any]:
    """Payloads: valid, and every way a claim can be missing, odd or hostile."""
    yield claims(now)
    yield claims(now, iat=None)
    yield claims(now, member=True, role="admin", groups=["ops", "finance"])
    for exp in (
        now - 3600,
        now - LEEWAY - 2,
        now - LEEWAY + 2,
        now - 1,
        now + 2,
        str(now + 600),
        f" {now + 600} ",
        f"{now + 600}.5",
        "1_999_999_999",
        "tomorrow",
        "",
        True,
        False,
        float(now + 600),
        now + 600.9,
        10**30,
        -(10**30),
        0,
        -1,
        [now + 600],
        {"at": now + 600},
        "\u0661\u0662",
    ):
        yield claims(now, exp=exp)
    yield claims(now, exp=None)
    yield {"sub": "shopper-1", "exp": None}
    for iat in (
        now + LEEWAY + 2,
        now + LEEWAY - 2,
        now - MAX_LIFETIME,
        str(now),
        "now",
        True,
        float(now),
        10**30,
        [now],
        -(10**30),
    ):
        yield claims(now, iat=iat)
    for nbf in (now + LEEWAY + 2, now + LEEWAY - 2, now - 60, str(now), "soon", True, [1], 1e300):
        yield claims(now, nbf=nbf)
    # The lifetime limit, counted from iat or from now.
    yield claims(now, exp=now + MAX_LIFETIME + LEEWAY - 2)
    yield claims(now, exp=now + MAX_LIFETIME + LEEWAY + 2)
    yield claims(now, iat=None, exp=now + MAX_LIFETIME + LEEWAY + 2)
    yield claims(now, iat=now - 7200, exp=now + MAX_LIFETIME)
    for sub in (
        42,
        4.2,
        True,
        None,
        "",
        " ",
        "u" * 128,
        "u" * 129,
        "u\x00",
        "u\ud800",
        "\U0001f600",
        "zoë",
        ["a"],
        {"id": "a"},
        " shopper ",
        "a\nb",
    ):
        yield claims(now, sub=sub)
    for member in (True, False, "true", 1, 0, None, [True]):
        yield claims(now, member=member)
    for role in ("admin", "Admin", ["admin"], "", None, 1):
        yield claims(now, role=role, groups=["ops"])
    for groups in (
        [],
        ["ops"],
        "ops",
        [""],
        ["g" * 64],
        ["g" * 65],
        [1],
        ["ops", "ops"],
        None,
        {"ops": 1},
    ):
        yield claims(now, role="admin", groups=groups)
    yield claims(now, groups=["ops"])
    for aud in ("shop", "", [], ["shop"], None, 0, 1):
        yield claims(now, aud=aud)
    for jti in ("id-1", 1, None, ["x"]):
        yield claims(now, jti=jti)
    yield claims(now, iss=1)
    yield claims(now, extra="x" * 100_000)
    # Raw payloads: duplicate keys (the last wins in both), non-objects, non-JSON, odd
    # encodings, numbers JSON allows but int() does not take.
    exp = now + 600
    yield b'{"sub":"a","sub":"b","exp":%d}' % exp
    yield b'{"sub":"a","exp":1,"exp":%d}' % exp
    yield b'{"sub":"a","exp":%d,"exp":1}' % exp
    yield b'{"sub":"a","exp":%d,"member":true,"member":"no"}' % exp
    yield b'{"sub":"a","exp":1e400}'
    yield b'{"sub":"a","exp":-1e400}'
    yield b'{"sub":"a","exp":NaN}'
    yield b'{"sub":"a","exp":Infinity}'
    yield b'{"sub":"a","exp":%d.0e0}' % exp
    yield b'{"sub":"a","exp":1' + b"0" * 5000 + b"}"
    yield b' \n{"sub":"a","exp":%d}\t ' % exp
    yield b'\xef\xbb\xbf{"sub":"a","exp":%d}' % exp
    yield f'{{"sub":"a","exp":{exp}}}'
    yield json.dumps({"sub": "a", "exp": exp}).encode("utf-16")
    yield json.dumps({"sub": "a", "exp": exp}).encode("utf-16-le")
    yield json.dumps({"sub": "a", "exp": exp}).encode("utf-32-be")
    yield b'{"sub":"\xff","exp":%d}' % exp
    yield b'{"sub":"\xed\xa0\x80","exp":%d}' % exp
    yield b'{"sub":"\\ud800","exp":%d}' % exp
    yield b'{"sub":"a\\u0000","exp":%d}' % exp
    yield b'{"sub":"a","exp":%d,}' % exp
    yield b"[" * 100_000 + b"]" * 100_000
    yield b'{"a":' * 5_000 + b"1" + b"}" * 5_000
    yield from (b"", b"null", b"[]", b"1", b'"sub"', b"{", b"{}", b"not json", b"\x00\x00")


def header_variants() -> Iterator[Any]:
    yield HS256_HEADER
    yield {"alg": "HS256"}
    yield {"typ": "JWT"}
    for alg in ("none", "None", "HS512", "hs256", "HS256 ", "RS256", "", None, ["HS256"], 256):
        yield {"alg": alg, "typ": "JWT"}
    yield {"alg": "HS256", "kid": 1}
    yield {"alg": "HS256", "kid": "key-1"}
    yield {"alg": "HS256", "kid": None}
    for crit in (["b64"], ["exp"], [], "b64", [1], None, ["b64", "b64"]):
        yield {"alg": "HS256", "crit": crit}
        yield {"alg": "HS256", "crit": crit, "b64": True}
    yield {"alg": "HS256", "b64": False}
    yield {"alg": "HS256", "b64": False, "crit": ["b64"]}
    yield {"alg": "HS256", "b64": 0}
    yield {"alg": "HS256", "b64": True}
    yield b'{"alg":"none","alg":"HS256"}'
    yield b'{"alg":"HS256","alg":"none"}'
    yield b'{"alg":"HS256",}'
    yield b' {"alg":"HS256"} '
    yield b'\xef\xbb\xbf{"alg":"HS256"}'
    yield json.dumps({"alg": "HS256"}).encode("utf-16")
    yield json.dumps({"alg": "HS256"}).encode("utf-32-le")
    yield b'{"alg":"HS\\u0032\\u0035\\u0036"}'
    yield b'{"alg":"\xff"}'
    yield from (b"", b"[]", b"null", b'"HS256"', b"{", b"nope")


def structural_variants(token: str) -> Iterator[str]:
    """The same token cut, padded, re-encoded or tampered with."""
    header, payload, signature = token.split(".")
    yield token
    for pad in ("=", "==", "==="):
        yield f"{header}{pad}.{payload}.{signature}"
        yield f"{header}.{payload}{pad}.{signature}"
        yield f"{header}.{payload}.{signature}{pad}"
    yield f"{header}.{payload}"
    yield header
    yield ""
    yield "."
    yield ".."
    yield "..."
    yield f"{header}.{payload}.{signature}."
    yield f"{header}.{payload}.{signature}.{signature}"
    yield f".{header}.{payload}.{signature}"
    yield f"{header}..{signature}"
    yield f"{header}.{payload}."
    yield f"{header}.{payload}.{signature[:-1]}"
    yield f"{header}.{payload}.{signature[:-2]}"
    yield f"{header}.{payload}.{signature}A"
    yield f"{header}.{payload}.{signature}AA"
    yield f" {token}"
    yield f"{token} "
    yield f"{header}.{payload}\n.{signature}"
    yield token.replace("-", "+").replace("_", "/")
    yield token.upper()
    forged = hmac.new(OTHER_SECRET, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    yield f"{header}.{payload}.{b64(forged)}"
    yield f"{header}.{payload}.{b64(b'')}"
    yield f"{header}.{payload}.é"
    yield f"{header}.{payload}.{signature}\udc80"
    # Non-canonical base64: the unused low bits of a segment's last character set.
    for name, segment in (("header", header), ("payload", payload), ("signature", signature)):
        if len(segment) % 4 in (2, 3):
            alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
            last = alphabet.index(segment[-1])
            for bit in range(4 if len(segment) % 4 == 2 else 2):
                odd = segment[:-1] + alphabet[last ^ (1 << bit)]
                parts = {"header": header, "payload": payload, "signature": signature}
                parts[name] = odd
                yield ".".join(parts.values())


def assert_same(verifier: Hs256, token: str) -> Answer:
    expected = reference(token)
    got = answer(verifier, token)
    assert got == expected, f"token {token[:300]!r}: PyJWT says {expected!r}, Hs256 {got!r}"
    return got


def test_generated_tokens_get_pyjwts_answers() -> None:
    verifier = hs256_of(SETTINGS)
    now = int(time.time())
    answers: list[Answer] = []
    headers = list(header_variants())
    payloads = list(claim_variants(now))
    for header in headers:
        for payload in payloads[:20]:
            answers.append(assert_same(verifier, signed(payload, header)))
    for payload in payloads:
        for header in headers[:3]:
            token = signed(payload, header)
            answers.append(assert_same(verifier, token))
        for variant in structural_variants(signed(payload)):
            answers.append(assert_same(verifier, variant))
        answers.append(assert_same(verifier, signed(payload, key=OTHER_SECRET)))
        answers.append(
            assert_same(verifier, signed(payload, {"alg": "HS512"}, digest=hashlib.sha512))
        )
        answers.append(
            assert_same(verifier, signed(payload, {"alg": "HS384"}, digest=hashlib.sha384))
        )
    # RFC 7797 detached payloads (`b64: false`): an empty payload segment, still refused.
    for header in headers:
        signing_input = f"{b64(as_json(header))}."
        mac = hmac.new(TEST_JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256)
        answers.append(assert_same(verifier, f"{signing_input}.{b64(mac.digest())}"))
    # The set is worth something only if it reaches both answers, and many refusals.
    accepted = [a for a in answers if not isinstance(a, str)]
    refusals = {a for a in answers if isinstance(a, str)}
    assert len(answers) > 3_000
    assert len(accepted) > 100
    assert len(refusals) > 40


@pytest.mark.parametrize("seed", range(4))
def test_mutated_tokens_get_pyjwts_answers(seed: int) -> None:
    """Random byte edits of valid and near-valid tokens: a flipped character, a dropped or
    doubled one, a piece of another token spliced in."""
    rng = random.Random(seed)
    verifier = hs256_of(SETTINGS)
    now = int(time.time())
    pool = [signed(p) for p in list(claim_variants(now))[:60]]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=.+/ \x00é"
    for _ in range(2_500):
        token = rng.choice(pool)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(token) + 1)
            match rng.randrange(4):
                case 0:
                    token = token[:at] + rng.choice(alphabet) + token[at + 1 :]
                case 1:
                    token = token[:at] + token[at + 1 :]
                case 2:
                    token = token[:at] + token[at : at + 3] + token[at:]
                case _:
                    other = rng.choice(pool)
                    token = token[:at] + other[at:]
        assert_same(verifier, token)


@pytest.mark.parametrize("seed", range(2))
def test_random_claims_get_pyjwts_answers(seed: int) -> None:
    """Random claim sets, validly signed: every mix of the odd values above."""
    rng = random.Random(seed)
    verifier = hs256_of(SETTINGS)
    now = int(time.time())
    values: dict[str, list[Any]] = {}
    for variant in claim_variants(now):
        if isinstance(variant, dict):
            for name, value in variant.items():
                if name != "extra":
                    values.setdefault(name, []).append(value)
    for _ in range(3_000):
        payload = {
            name: rng.choice(choices)
            for name, choices in values.items()
            if rng.random() < (0.9 if name in ("sub", "exp") else 0.3)
        }
        assert_same(verifier, signed(payload))


@pytest.mark.parametrize("seed", range(2))
def test_segments_decode_as_pyjwt_decodes_them(seed: int) -> None:
    """Short strings over base64url, standard base64, padding and junk: the same bytes or
    the same refusal as PyJWT's segment decoder."""
    rng = random.Random(seed)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_" * 2 + "=+/ .!\x80"
    for _ in range(20_000):
        segment = "".join(rng.choice(alphabet) for _ in range(rng.randrange(12))).encode()
        try:
            expected: bytes | str = jwt.api_jws.PyJWS._decode_base64url_segment(segment, "crypto")
        except jwt.DecodeError as exc:
            expected = str(exc)
        try:
            got: bytes | str = _segment(segment, "crypto")
        except _Refused as exc:
            got = str(exc)
        assert got == expected, segment


def test_a_valid_token_gives_its_user() -> None:
    now = int(time.time())
    token = signed(claims(now, member=True, role="admin", groups=["ops"]))
    user, expires = user_of(SETTINGS, hs256_of(SETTINGS).claims(token))
    assert user == User(id="shopper-1", member=True, is_admin=True, groups=frozenset({"ops"}))
    assert expires == now + 600 + LEEWAY


def test_headers_are_parsed_once_and_the_cache_is_bounded() -> None:
    verifier = hs256_of(SETTINGS)
    now = int(time.time())
    for n in range(200):
        token = signed(claims(now), {"alg": "HS256", "kid": f"k{n}"})
        assert assert_same(verifier, token) == reference(token)
        assert len(verifier._headers) <= 64


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        Hs256("", leeway=0)
