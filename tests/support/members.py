"""Members' points and invites, as tests read them (through the API, and straight from
Postgres to check the ledger's books)."""

from typing import Any

import httpx
from sqlalchemy import text

from app.container import Container
from tests.support.factories import Auth


async def my_points(
    client: httpx.AsyncClient, auth: Auth, user_id: str, **params: int
) -> dict[str, Any]:
    response = await client.get("/api/v1/me/points", headers=auth.headers(user_id), params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def invite_code(client: httpx.AsyncClient, auth: Auth, user_id: str) -> str:
    response = await client.post("/api/v1/me/invite-code", headers=auth.headers(user_id))
    assert response.status_code == 200, response.text
    code: str = response.json()["code"]
    return code


async def accept(client: httpx.AsyncClient, auth: Auth, code: str, user_id: str) -> httpx.Response:
    return await client.post(f"/api/v1/invites/{code}/accept", headers=auth.headers(user_id))


async def point_books(services: Container) -> dict[str, tuple[int, int]]:
    """Each user's (balance row, sum of their entries)."""
    async with services.sessionmaker() as session:
        rows = await session.execute(
            text(
                """
                SELECT coalesce(b.user_id, e.user_id), coalesce(b.balance, 0),
                       coalesce(e.total, 0)
                FROM point_balances AS b
                FULL JOIN (SELECT user_id, sum(points) AS total FROM point_entries
                           GROUP BY user_id) AS e ON e.user_id = b.user_id
                """
            )
        )
    return {user: (int(balance), int(total)) for user, balance, total in rows}


async def invite_rows(services: Container) -> dict[str, tuple[str, str | None]]:
    """Each invitee's (reward_status, reward_error)."""
    async with services.sessionmaker() as session:
        rows = await session.execute(
            text("SELECT invitee_id, reward_status, reward_error FROM invites")
        )
    return {invitee: (status, error) for invitee, status, error in rows}
