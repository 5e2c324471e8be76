"""The bot challenge: each event's proof-of-work challenge (public), the check a join or a
registration makes (require_pow), and the operator's change of difficulty mid-sale."""

import re

import httpx
import pytest

from app.access import pow
from app.access.gate import require_pow
from app.auth import User
from app.config import Settings
from app.container import Container
from app.errors import ChallengeRequired
from app.events import service as events
from app.events.models import Event
from tests.access.test_gate import create_gated_event
from tests.support.factories import Auth, assert_problem

LOW_BITS = 8  # ~256 hashes to solve: fast in a test, and a random nonce rarely solves it


async def set_bits(
    client: httpx.AsyncClient, event_id: int, bits: int, headers: dict[str, str]
) -> httpx.Response:
    return await client.patch(
        f"/api/v1/admin/events/{event_id}/access", json={"pow_bits": bits}, headers=headers
    )


async def event_row(services: Container, event_id: int) -> Event:
    async with services.sessionmaker() as session:
        return await events.get_event_row(session=session, event_id=event_id)


def a_wrong_nonce(challenge: str, user_id: str, bits: int) -> str:
    nonce = 0
    while pow.solves(challenge=challenge, user_id=user_id, nonce=str(nonce), bits=bits):
        nonce += 1
    return str(nonce)


async def test_the_challenge_is_the_events_own_and_stable(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    first = await create_gated_event(client, auth, mode="queue")
    second = await create_gated_event(client, auth, mode="draw")

    one = await client.get(f"/api/v1/events/{first.id}/challenge")  # public: no token
    again = await client.get(f"/api/v1/events/{first.id}/challenge")
    other = await client.get(f"/api/v1/events/{second.id}/challenge")

    assert one.status_code == 200, one.text
    assert set(one.json()) == {"challenge", "bits"}
    assert re.fullmatch(r"[0-9a-f]{64}", one.json()["challenge"])
    assert one.json() == again.json() == {"challenge": one.json()["challenge"], "bits": 0}
    assert other.json()["challenge"] != one.json()["challenge"]


async def test_an_open_event_asks_for_no_work(client: httpx.AsyncClient, auth: Auth) -> None:
    event = await create_gated_event(client, auth, mode="open")
    response = await client.get(f"/api/v1/events/{event.id}/challenge")
    assert response.status_code == 200
    assert response.json()["bits"] == 0


async def test_the_challenge_of_an_unknown_event_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/api/v1/events/999999999/challenge"), 404, "not_found")


@pytest.mark.parametrize("mode", ["queue", "draw"])
async def test_a_solved_challenge_is_accepted_and_a_wrong_one_refused(
    client: httpx.AsyncClient,
    auth: Auth,
    services: Container,
    settings: Settings,
    mode: str,
) -> None:
    event = await create_gated_event(client, auth, mode=mode)
    assert (await set_bits(client, event.id, LOW_BITS, auth.admin())).status_code == 200
    challenge = (await client.get(f"/api/v1/events/{event.id}/challenge")).json()
    assert challenge["bits"] == LOW_BITS
    row = await event_row(services, event.id)
    user = User(id="joiner")

    nonce = pow.solve(challenge=challenge["challenge"], user_id=user.id, bits=LOW_BITS)
    await require_pow(event=row, user=user, nonce=nonce, settings=settings)

    wrong = a_wrong_nonce(challenge["challenge"], user.id, LOW_BITS)
    for refused in (None, "", wrong, "x" * (pow.MAX_NONCE_LENGTH + 1)):
        with pytest.raises(ChallengeRequired):
            await require_pow(event=row, user=user, nonce=refused, settings=settings)
    # The work is bound to the user: another one's nonce does not carry over.
    other = User(id="someone-else")
    if not pow.solves(
        challenge=challenge["challenge"], user_id=other.id, nonce=nonce, bits=LOW_BITS
    ):
        with pytest.raises(ChallengeRequired):
            await require_pow(event=row, user=other, nonce=nonce, settings=settings)


async def test_no_work_is_asked_at_zero_bits_or_of_an_open_event(
    client: httpx.AsyncClient, auth: Auth, services: Container, settings: Settings
) -> None:
    for mode in ("queue", "open"):
        event = await create_gated_event(client, auth, mode=mode)
        row = await event_row(services, event.id)
        await require_pow(event=row, user=User(id="u"), nonce=None, settings=settings)


async def test_the_operator_changes_the_difficulty_mid_sale(
    client: httpx.AsyncClient, auth: Auth, services: Container, settings: Settings
) -> None:
    event = await create_gated_event(client, auth, mode="queue")
    user = User(id="joiner")
    challenge = (await client.get(f"/api/v1/events/{event.id}/challenge")).json()["challenge"]

    changed = await set_bits(client, event.id, LOW_BITS, auth.admin())

    assert changed.status_code == 200, changed.text
    assert changed.json()["id"] == event.id
    assert changed.json()["access"]["pow_bits"] == LOW_BITS
    assert changed.json()["access"]["mode"] == "queue"  # the rest of the access kept
    assert changed.json()["access"]["pass_seconds"] == 60
    after = (await client.get(f"/api/v1/events/{event.id}/challenge")).json()
    assert after == {"challenge": challenge, "bits": LOW_BITS}
    with pytest.raises(ChallengeRequired):
        await require_pow(
            event=await event_row(services, event.id), user=user, nonce=None, settings=settings
        )
    # Back to none: the same request no longer needs any work.
    assert (await set_bits(client, event.id, 0, auth.admin())).status_code == 200
    await require_pow(
        event=await event_row(services, event.id), user=user, nonce=None, settings=settings
    )
    log = await client.get(f"/api/v1/admin/audit-log?event_id={event.id}", headers=auth.admin())
    changes = [(a["before"], a["after"]) for a in log.json() if a["action"] == "event.access"]
    assert changes == [
        ({"pow_bits": LOW_BITS}, {"pow_bits": 0}),
        ({"pow_bits": 0}, {"pow_bits": LOW_BITS}),
    ]


async def test_the_same_difficulty_again_changes_and_logs_nothing(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_gated_event(client, auth, mode="draw")
    assert (await set_bits(client, event.id, 0, auth.admin())).status_code == 200
    log = await client.get(f"/api/v1/admin/audit-log?event_id={event.id}", headers=auth.admin())
    assert [a for a in log.json() if a["action"] == "event.access"] == []


async def test_only_an_operator_changes_the_difficulty(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    event = await create_gated_event(client, auth, mode="queue")

    assert_problem(
        await set_bits(client, event.id, LOW_BITS, auth.headers("shopper")), 403, "forbidden"
    )
    assert_problem(await set_bits(client, event.id, LOW_BITS, {}), 401, "unauthorized")

    after = (await client.get(f"/api/v1/events/{event.id}/challenge")).json()
    assert after["bits"] == 0


async def test_the_difficulty_of_an_unknown_or_open_event_or_out_of_range_is_refused(
    client: httpx.AsyncClient, auth: Auth
) -> None:
    open_event = await create_gated_event(client, auth, mode="open")
    queue = await create_gated_event(client, auth, mode="queue")

    assert_problem(await set_bits(client, 999999999, LOW_BITS, auth.admin()), 404, "not_found")
    assert_problem(
        await set_bits(client, open_event.id, LOW_BITS, auth.admin()), 409, "invalid_state"
    )
    for bad in (-1, 25):
        assert_problem(await set_bits(client, queue.id, bad, auth.admin()), 422, "validation_error")
    not_a_number = await client.patch(
        f"/api/v1/admin/events/{queue.id}/access", json={"pow_bits": "8"}, headers=auth.admin()
    )
    assert_problem(not_a_number, 422, "validation_error")
    extra = await client.patch(
        f"/api/v1/admin/events/{queue.id}/access",
        json={"pow_bits": 8, "mode": "open"},
        headers=auth.admin(),
    )
    assert_problem(extra, 422, "validation_error")
    assert (await client.get(f"/api/v1/events/{queue.id}/challenge")).json()["bits"] == 0
