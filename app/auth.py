"""JWT (HS256) verification and the CurrentUser / AdminUser dependencies."""

import time
from collections.abc import Sequence
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


def _decode(settings: Settings, token: str) -> tuple[User, float]:
    """The token's user and its expiry (epoch seconds, leeway included)."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=["HS256"],
            options={"require": ["sub", "exp"]},
            leeway=settings.jwt_leeway_seconds,
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired.") from exc
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"The token is invalid: {exc}.") from exc
    expires = _lifetime_checked(settings, claims)
    sub = claims.get("sub")
    # NUL would pass here and in Redis, then fail as the order is stored in Postgres; a
    # lone surrogate ("\ud800" in the JSON) cannot be encoded for either.
    if not isinstance(sub, str) or not sub or len(sub) > MAX_USER_ID_LENGTH or "\x00" in sub:
        raise Unauthorized("The token's `sub` must be a non-empty user id string.")
    if not _encodable(sub):
        raise Unauthorized("The token's `sub` must be text that UTF-8 can encode.")
    member = claims.get("member", False)
    if not isinstance(member, bool):
        raise Unauthorized("The token's `member` claim must be a boolean.")
    is_admin = claims.get("role") == ADMIN_ROLE
    groups = claims.get("groups", [])
    if not isinstance(groups, list) or not all(
        isinstance(g, str) and 0 < len(g) <= MAX_GROUP_LENGTH for g in groups
    ):
        raise Unauthorized("The token's `groups` claim must be a list of group names.")
    # Groups are an operator's: a shopper's token naming some approves nothing.
    held = frozenset(groups) if is_admin else frozenset()
    user = User(id=sub, member=member, is_admin=is_admin, groups=held)
    return user, expires + settings.jwt_leeway_seconds


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


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


def verify_token(settings: Settings, token: str) -> User:
    return _decode(settings, token)[0]


class TokenVerifier:
    """Verifies tokens, remembering good ones until they expire.

    A flash crowd re-sends the same token many times a second (countdown polls, retries),
    and HS256 verification is a measurable share of a purchase's CPU. The cache key is the
    whole token, signature included, so only a byte-identical, already verified token hits.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._verified: dict[str, tuple[User, float]] = {}

    def verify(self, token: str) -> User:
        return self.verify_until(token)[0]

    def verify_until(self, token: str) -> tuple[User, float]:
        """The token's user and when the token stops being accepted (epoch seconds,
        leeway included): what a long answer, such as a stream, must not outlive."""
        known = self._verified.get(token)
        if known is not None and time.time() < known[1]:
            return known
        user, expires = _decode(self._settings, token)
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
