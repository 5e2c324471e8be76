"""The typed application state built by the lifespan, and its dependency aliases."""

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.auth import TokenVerifier
from app.config import Settings
from app.payments.gateway import PaymentGateway, SimulatedGateway
from app.redis import Scripts
from app.seckill.keys import GlobalKeys
from app.seckill.sold_out import SoldOutMarks


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis
    scripts: Scripts
    sold_out: SoldOutMarks
    # Charges and refunds; the simulated gateway until a real one is plugged in.
    gateway: PaymentGateway = field(default_factory=SimulatedGateway)
    tokens: TokenVerifier = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = TokenVerifier(self.settings)

    @property
    def keys(self) -> GlobalKeys:
        return GlobalKeys(self.settings.redis_key_prefix)


async def get_services(request: Request) -> Services:  # async: no thread-pool hop
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
