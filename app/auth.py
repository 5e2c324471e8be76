"""JWT (HS256) verification and the CurrentUser / AdminUser dependencies."""

import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.config import Settings
from app.errors import Forbidden, Unauthorized

ADMIN_ROLE = "admin"
MAX_USER_ID_LENGTH = 128
MAX_GROUP_LENGTH = 64
_NO_GROUPS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class User:
    id: str
    member: bool = False
    is_admin: bool = False
    # An operator's groups (the `groups` claim): which approvals of a campaign they give.
    groups: frozenset[str] = frozenset()


def mint_token(
    settings: Settings,
    *,
    user_id: str,
    member: bool = False,
    admin: bool = False,
    groups: Sequence[str] = (),
    ttl_seconds: int = 24 * 3600,
) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    if member:
        claims["member"] = True
    if admin:
        claims["role"] = ADMIN_ROLE
    if groups:
        claims["groups"] = list(groups)
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


# The base64url alphabet of RFC 7515 (no padding): what a JWT's segments may hold.
_BASE64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_TO_BASE64 = bytes.maketrans(b"-_", b"+/")
# Each base64url character's 6-bit value, for the canonical check of a segment's last one.
_SEXTET = bytes(_BASE64URL.find(bytes([c])) % 64 for c in range(256))
# The padding that completes a segment of length % 4 (1 is never valid).
_PADDING = (b"", b"", b"==", b"=")
# Bits of the last character that a segment of length % 4 leaves unused: must be 0.
_UNUSED_BITS = (0, 0, 0x0F, 0x03)
_SHA256_BLOCK = 64
_JSON = json.JSONDecoder()  # what json.loads uses, minus its per-call argument checks
# The decoder's scanner: decode() minus its whitespace and trailing-data checks (typeshed
# does not declare the attribute).
_SCAN: Callable[[str, int], tuple[Any, int]] = _JSON.scan_once  # type: ignore[attr-defined]
# Issuers sign every token with the same few headers: each is parsed once.
_HEADER_CACHE_SIZE = 64


class HmacSha256:
    """HMAC-SHA256 under one key, its keyed inner and outer hashes computed once (RFC
    2104): each message then costs two copies and its own bytes, about half of
    `hmac.new(key, message, sha256)`, which re-derives them every call. For the hot path's
    checks: a token's signature (Hs256) and a pass's (app/access/passes.py)."""

    def __init__(self, key: bytes) -> None:
        block = key if len(key) <= _SHA256_BLOCK else hashlib.sha256(key).digest()
        block = block.ljust(_SHA256_BLOCK, b"\x00")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


class _Refused(Exception):
    """A token refused, in PyJWT's words (the detail of the 401)."""


class _Expired(Exception):
    pass


class Hs256:
    """Verifies HS256 JWTs and returns their claims: the answers of
    `jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]},
    leeway=leeway)` (PyJWT 2.x), token for token, its words included, at a fraction of
    its CPU. PyJWT is generic: it re-vets the key on every call (a DER, certificate and
    JWK parse of the secret), checks the alphabet byte by byte in Python and looks
    algorithms up in tables; a crowd's cold tokens paid all that on the hot path.
    tests/test_hs256.py holds it to PyJWT over generated and hostile tokens.

    The algorithm is pinned: a header naming any other (`none` included) is refused, as
    are `crit` extensions, `b64: false` and non-canonical base64. The signature is
    compared in constant time (hmac.compare_digest)."""

    def __init__(self, secret: str, *, leeway: float) -> None:
        key = secret.encode()
        if not key:
            raise ValueError("The HS256 secret must not be empty.")
        self._mac = HmacSha256(key)
        self._leeway = leeway
        self._headers: dict[bytes, dict[str, Any] | str] = {}

    def claims(self, token: str) -> dict[str, Any]:
        """The token's verified claims, or Unauthorized (PyJWT's words in the detail)."""
        try:
            return self._claims(token)
        except _Expired:
            raise Unauthorized("The token has expired.") from None
        except _Refused as exc:
            raise Unauthorized(f"The token is invalid: {exc}.") from None

    def _claims(self, token: str) -> dict[str, Any]:
        # One pass, few calls: this runs once per buyer of a crowd.
        raw = token.encode()
        signing_input, dot, crypto_segment = raw.rpartition(b".")
        header_segment, dot2, payload_segment = signing_input.partition(b".")
        if not dot or not dot2:
            raise _Refused("Not enough segments")
        header = self._header(header_segment)
        detached = header.get("b64", True) is False
        if detached:
            if payload_segment:
                raise _Refused("Payload segment must be empty when 'b64' is false.")
            payload = b""
        else:
            payload = _segment(payload_segment, "payload")
        signature = _segment(crypto_segment, "crypto")
        if "kid" in header and not isinstance(header["kid"], str):
            raise _Refused("Key ID header parameter must be a string")
        if "crit" in header:
            _check_crit(header)
        if detached:
            crit = header.get("crit") or []
            if not isinstance(crit, list) or "b64" not in crit:
                raise _Refused("The 'b64' header parameter requires 'b64' to be listed in 'crit'.")
            raise _Refused(
                'It is required that you pass in a value for the "detached_payload" argument '
                "to decode a message having the b64 header set to false."
            )
        if "alg" not in header:
            raise _Refused("Algorithm not specified")
        if header["alg"] != "HS256":
            raise _Refused("The specified alg value is not allowed")
        expected = self._mac.digest(signing_input)
        if not hmac.compare_digest(signature, expected):
            raise _Refused("Signature verification failed")
        try:
            claims = _json(payload)
        except (ValueError, RecursionError) as exc:
            raise _Refused(f"Invalid payload string: {exc}") from None
        if not isinstance(claims, dict):
            raise _Refused("Invalid payload string: must be a json object")
        self._check_claims(claims)
        return claims

    def _header(self, segment: bytes) -> dict[str, Any]:
        header = self._headers.get(segment)
        if header is None:
            try:
                header = _parse_header(segment)
            except _Refused as exc:
                header = str(exc)
            if len(self._headers) >= _HEADER_CACHE_SIZE:
                self._headers.clear()
            self._headers[segment] = header
        if isinstance(header, str):
            raise _Refused(header)
        return header

    def _check_claims(self, claims: dict[str, Any]) -> None:
        """PyJWT's claim checks, in its order: required, iat, nbf, exp, aud, sub, jti."""
        if claims.get("sub") is None:
            raise _Refused('Token is missing the "sub" claim')
        if claims.get("exp") is None:
            raise _Refused('Token is missing the "exp" claim')
        now = time.time()
        leeway = self._leeway
        if "iat" in claims:
            iat = claims["iat"]
            if type(iat) is not int:
                iat = _as_int(iat)
            if iat is None:
                raise _Refused("Issued At claim (iat) must be an integer.")
            if iat > now + leeway:
                raise _Refused("The token is not yet valid (iat)")
        if "nbf" in claims:
            nbf = _as_int(claims["nbf"])
            if nbf is None:
                raise _Refused("Not Before claim (nbf) must be an integer.")
            if nbf > now + leeway:
                raise _Refused("The token is not yet valid (nbf)")
        exp = claims["exp"]
        if type(exp) is not int:
            exp = _as_int(exp)
        if exp is None:
            raise _Refused("Expiration Time claim (exp) must be an integer.")
        if exp <= now - leeway:
            raise _Expired
        if claims.get("aud"):
            raise _Refused("Invalid audience")
        if not isinstance(claims["sub"], str):
            raise _Refused("Subject must be a string")
        if "jti" in claims and not isinstance(claims["jti"], str):
            raise _Refused("JWT ID must be a string")


def _as_int(value: Any) -> int | None:
    """int(value) as PyJWT takes a NumericDate (numeric strings and bools included)."""
    try:
        return int(value)
    except (ValueError, TypeError, OverflowError):
        return None


def _segment(segment: bytes, name: str) -> bytes:
    """A segment's bytes: base64url, canonical, with at most the padding it needs (some
    issuers pad), else refused in PyJWT's words."""
    stripped = segment.rstrip(b"=")
    padding = len(segment) - len(stripped)
    tail = len(stripped) % 4
    if (
        padding > 2
        or (padding and len(segment) % 4)
        or tail == 1
        or stripped.translate(None, _BASE64URL)
        # Non-canonical: bits past the data in the last character (PyJWT re-encodes).
        or (tail and _SEXTET[stripped[-1]] & _UNUSED_BITS[tail])
    ):
        raise _Refused(f"Invalid {name} padding")
    return binascii.a2b_base64(stripped.translate(_TO_BASE64) + _PADDING[tail])


def _json(data: bytes) -> Any:
    """json.loads(data), step by step: the text in the encoding json.loads detects."""
    # What json.detect_encoding finds for an object in UTF-8, without asking it.
    utf8_object = data[:1] == b"{" and data[1:2] != b"\x00"
    encoding = "utf-8" if utf8_object else json.detect_encoding(data)
    text = data.decode(encoding, "surrogatepass")
    if utf8_object:
        # The scanner alone, when it reads the whole text: what decode() returns then.
        # Anything else goes the full way, for json's own error.
        try:
            value, end = _SCAN(text, 0)
        except Exception:  # noqa: BLE001 - decode() below raises the real error
            end = -1
        if end == len(text):
            return value
    return _JSON.decode(text)


def _parse_header(segment: bytes) -> dict[str, Any]:
    data = _segment(segment, "header")
    try:
        header = _json(data)
    except (ValueError, RecursionError) as exc:
        raise _Refused(f"Invalid header string: {exc}") from None
    if not isinstance(header, dict):
        raise _Refused("Invalid header string: must be a json object")
    return header


def _check_crit(header: dict[str, Any]) -> None:
    """RFC 7515 `crit`: only extensions understood may be critical (PyJWT knows `b64`)."""
    crit = header["crit"]
    if not isinstance(crit, list) or len(crit) == 0:
        raise _Refused("Invalid 'crit' header: must be a non-empty list")
    for extension in crit:
        if not isinstance(extension, str):
            raise _Refused("Invalid 'crit' header: values must be strings")
        if extension != "b64":
            raise _Refused(f"Unsupported critical extension: {extension}")
        if extension not in header:
            raise _Refused(f"Critical extension '{extension}' is missing from headers")


def user_of(settings: Settings, claims: dict[str, Any]) -> tuple[User, float]:
    """The user of a verified token's claims and when the token stops being accepted
    (epoch seconds, leeway included), or Unauthorized: this service's own rules."""
    expires = _lifetime_checked(settings, claims)
    sub = claims.get("sub")
    # NUL would pass here and in Redis, then fail as the order is stored in Postgres; a
    # lone surrogate ("\ud800" in the JSON) cannot be encoded for either.
    if not isinstance(sub, str) or not sub or len(sub) > MAX_USER_ID_LENGTH or "\x00" in sub:
        raise Unauthorized("The token's `sub` must be a non-empty user id string.")
    if not sub.isascii() and not _encodable(sub):
        raise Unauthorized("The token's `sub` must be text that UTF-8 can encode.")
    member = claims.get("member", False)
    if not isinstance(member, bool):
        raise Unauthorized("The token's `member` claim must be a boolean.")
    is_admin = claims.get("role") == ADMIN_ROLE
    held = _NO_GROUPS
    if "groups" in claims:
        groups = claims["groups"]
        if not isinstance(groups, list) or not all(
            isinstance(g, str) and 0 < len(g) <= MAX_GROUP_LENGTH for g in groups
        ):
            raise Unauthorized("The token's `groups` claim must be a list of group names.")
        # Groups are an operator's: a shopper's token naming some approves nothing.
        if is_admin:
            held = frozenset(groups)
    user = User(id=sub, member=member, is_admin=is_admin, groups=held)
    return user, expires + settings.jwt_leeway_seconds


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_number(value: Any) -> bool:
    # JSON's numbers are exactly int and float; bool, an int subclass, is not one here.
    return type(value) is int or type(value) is float


def _lifetime_checked(settings: Settings, claims: dict[str, Any]) -> float:
    """`exp` (and `iat`, if sent) must be JSON numbers (RFC 7519 NumericDate; PyJWT also
    takes numeric strings), and the token may not live longer than the maximum: counted
    from `iat`, or from now for a token without one."""
    exp, iat = claims["exp"], claims.get("iat")
    if not _is_number(exp) or (iat is not None and not _is_number(iat)):
        raise Unauthorized("The token's `exp` and `iat` must be numbers (seconds since 1970).")
    start = float(iat) if iat is not None else time.time()
    if float(exp) - start > settings.jwt_max_lifetime_seconds + settings.jwt_leeway_seconds:
        raise Unauthorized(
            f"The token lives longer than {settings.jwt_max_lifetime_seconds} seconds "
            "(SECKILL_JWT_MAX_LIFETIME_SECONDS); ask for a shorter-lived one."
        )
    return float(exp)


def hs256_of(settings: Settings) -> Hs256:
    return Hs256(settings.jwt_secret.get_secret_value(), leeway=settings.jwt_leeway_seconds)


def verify_token(settings: Settings, token: str) -> User:
    return user_of(settings, hs256_of(settings).claims(token))[0]


class TokenVerifier:
    """Verifies tokens, remembering good ones until they expire.

    A flash crowd re-sends the same token many times a second (countdown polls, retries),
    and HS256 verification is a measurable share of a purchase's CPU. The cache key is the
    whole token, signature included, so only a byte-identical, already verified token hits.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._hs256 = hs256_of(settings)
        self._verified: dict[str, tuple[User, float]] = {}

    def verify(self, token: str) -> User:
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            return known[0]
        return self.verify_until(token)[0]

    def verify_until(self, token: str) -> tuple[User, float]:
        """The token's user and when the token stops being accepted (epoch seconds,
        leeway included): what a long answer, such as a stream, must not outlive."""
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            return known
        user, expires = user_of(self._settings, self._hs256.claims(token))
        if len(self._verified) >= self._settings.token_cache_size:
            self._verified.clear()  # crude but bounded; refills within a second at load
        self._verified[token] = (user, expires)
        return user, expires


_bearer = HTTPBearer(auto_error=False, description="HS256 JWT; see docs/CONTRACT.md")


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header, or Unauthorized. Read as
    FastAPI's HTTPBearer reads it (the rest stripped: RFC 6750 allows more than one
    space), so every route, the thin purchase route included, takes the same headers."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("Send `Authorization: Bearer <token>`.")
    return token


# Dependencies are `async def` although they never await: FastAPI runs plain `def`
# dependencies in a worker thread, a hop that cost a quarter of a purchase's CPU.
async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Send `Authorization: Bearer <token>`.")
    verifier: TokenVerifier = request.app.state.container.tokens
    return verifier.verify(credentials.credentials)


async def admin_user(user: Annotated[User, Depends(current_user)]) -> User:
    if not user.is_admin:
        raise Forbidden("This endpoint is for operators (role=admin).")
    return user


CurrentUser = Annotated[User, Depends(current_user)]
AdminUser = Annotated[User, Depends(admin_user)]
