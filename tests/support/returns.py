"""Returns, as tests ask for and decide them through the API."""

from typing import Any

import httpx
from sqlalchemy import text

from app.container import Container
from tests.support.factories import Auth


async def ask_return(
    client: httpx.AsyncClient,
    auth: Auth,
    order_id: str,
    *,
    user_id: str = "shopper-1",
    reason: str = "damaged",
    **extra: Any,
) -> httpx.Response:
    """The buyer (`user_id`) asks to return the order."""
    return await client.post(
        f"/api/v1/orders/{order_id}/returns",
        headers=auth.headers(user_id),
        json={"reason": reason, **extra},
    )


async def requested_return(
    client: httpx.AsyncClient, auth: Auth, order_id: str, **kwargs: Any
) -> int:
    response = await ask_return(client, auth, order_id, **kwargs)
    assert response.status_code == 201, response.text
    return_id: int = response.json()["id"]
    return return_id


async def approve(client: httpx.AsyncClient, auth: Auth, return_id: int | str) -> httpx.Response:
    return await client.post(f"/api/v1/admin/returns/{return_id}/approve", headers=auth.admin())


async def reject(
    client: httpx.AsyncClient, auth: Auth, return_id: int | str, reason: str = "no photo"
) -> httpx.Response:
    return await client.post(
        f"/api/v1/admin/returns/{return_id}/reject", headers=auth.admin(), json={"reason": reason}
    )


async def move_payment_back(services: Container, order_id: str, days: float) -> None:
    """Pretend the order was paid `days` earlier than it was (Postgres's row)."""
    async with services.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE orders SET paid_at = paid_at - make_interval(secs => :s) WHERE id = :id"),
            {"s": days * 86400, "id": order_id},
        )
