"""Deciding one request against the per-user and per-address limits."""

from typing import Annotated, Any

from fastapi import Depends, Request

from app.auth import CurrentUser, User
from app.container import Container, ContainerDep
from app.errors import RateLimited
from app.ratelimit.addresses import bucket_name, client_address
from app.store.rate_limit import Scope, Verdict, address_bucket, hit, user_bucket


def address_of(request: Request, services: Container) -> str | None:
    """The per-address bucket's subject for this request, or None if the address limit
    is off (then nothing is parsed)."""
    peer = request.client.host if request.client else None
    return address_bucket_of(peer, request.headers.get("x-forwarded-for"), services)


def address_bucket_of(
    peer: str | None, forwarded_for: str | None, services: Container
) -> str | None:
    """`address_of` from the peer and its `X-Forwarded-For` header, for callers below the
    framework (the thin purchase route)."""
    if services.settings.rate_limit_per_address is None:
        return None
    address = client_address(peer, forwarded_for, services.settings.trusted_proxies)
    return bucket_name(address) if address is not None else None


def _refusal(verdict: Verdict, what: str) -> RateLimited:
    return RateLimited(
        f"Too many requests {what}; retry after {verdict.retry_after_header} s.",
        retry_after_seconds=int(verdict.retry_after_header),
    )


async def enforce(*, services: Container, scope: Scope, user: User, address: str | None) -> None:
    """Count this request against the user's and the address's limits for `scope`, or raise
    RateLimited (429). A request the user's limit refuses is not counted for its address."""
    settings = services.settings
    redis, scripts = services.redis, services.scripts
    prefix = settings.redis_key_prefix
    if settings.rate_limit_per_user is not None:
        verdict = await hit(
            redis,
            scripts,
            bucket=user_bucket(prefix, scope, user.id),
            rate=settings.rate_limit_per_user,
        )
        if not verdict.allowed:
            raise _refusal(verdict, "from this user")
    if settings.rate_limit_per_address is not None and address is not None:
        verdict = await hit(
            redis,
            scripts,
            bucket=address_bucket(prefix, scope, address),
            rate=settings.rate_limit_per_address,
        )
        if not verdict.allowed:
            raise _refusal(verdict, "from this address")


def limited(scope: Scope) -> Any:
    """A dependency returning the caller, after counting the request against `scope`'s
    limits: `user: Annotated[User, limited(Scope.CLAIM)]`. Declare RateLimited in the
    route's `responses=` so the 429 is in the OpenAPI document."""

    async def dependency(request: Request, user: CurrentUser, services: ContainerDep) -> User:
        await enforce(
            services=services, scope=scope, user=user, address=address_of(request, services)
        )
        return user

    return Depends(dependency)


# For the coupon and checkout routers (#10).
ClaimingUser = Annotated[User, limited(Scope.CLAIM)]
CheckingOutUser = Annotated[User, limited(Scope.CHECKOUT)]
# A quote takes nothing, but it reads SKUs and coupons from Postgres per request: unlimited,
# one client could keep the pool busy (issue 17, case 14).
QuotingUser = Annotated[User, limited(Scope.QUOTE)]
