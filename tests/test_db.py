"""The request's session owns the transaction: commit on success, then the after-commit
callbacks; rollback on error, and no callback. A session made when first asked for is
made only then."""

from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from app.container import Container
from app.db import SessionDep, SessionOfDep, after_commit, commit, request_transaction_of
from app.errors import InvalidState, install_error_handlers

CREATE = text("CREATE TABLE IF NOT EXISTS hook_probe (note text NOT NULL)")
INSERT = text("INSERT INTO hook_probe (note) VALUES (:note)")
NOTES = text("SELECT note FROM hook_probe ORDER BY note")


async def _notes(services: Container) -> list[str]:
    async with services.sessionmaker() as session:
        return list((await session.scalars(NOTES)).all())


async def test_callbacks_run_in_order_after_the_commit(services: Container) -> None:
    seen: list[tuple[str, list[str]]] = []

    async def callback(name: str) -> None:
        seen.append((name, await _notes(services)))  # another session: sees the commit

    async with services.sessionmaker() as session:
        await session.execute(CREATE)
        await session.execute(INSERT, {"note": "written"})
        after_commit(session, lambda: callback("first"))
        after_commit(session, lambda: callback("second"))
        assert seen == []
        await commit(session)

    assert seen == [("first", ["written"]), ("second", ["written"])]


async def test_a_callback_runs_once(services: Container) -> None:
    runs: list[int] = []

    async def callback() -> None:
        runs.append(1)

    async with services.sessionmaker() as session:
        after_commit(session, callback)
        await commit(session)
        await commit(session)

    assert runs == [1]


def _app(services: Container, ran: list[str]) -> FastAPI:
    app = FastAPI()
    app.state.container = services
    install_error_handlers(app)

    async def remember() -> None:
        ran.append("callback")

    @app.post("/notes/{note}")
    async def write(note: str, session: SessionDep) -> dict[str, str]:
        await session.execute(INSERT, {"note": note})
        after_commit(session, remember)
        if note == "refused":
            raise InvalidState("refused after writing")
        return {"note": note}

    return app


async def test_the_session_dependency_commits_or_rolls_back(services: Container) -> None:
    async with services.sessionmaker() as session:
        await session.execute(CREATE)
        await session.commit()
    ran: list[str] = []
    transport = httpx.ASGITransport(app=_app(services, ran))
    async with httpx.AsyncClient(transport=transport, base_url="http://db.test") as client:
        refused = await client.post("/notes/refused")
        assert refused.status_code == 409
        assert await _notes(services) == []
        assert ran == []

        kept = await client.post("/notes/kept")
        assert kept.status_code == 200

    assert await _notes(services) == ["kept"]
    assert ran == ["callback"]


def _lazy_app(services: Container, made: list[int]) -> FastAPI:
    app = FastAPI()
    app.state.container = services
    install_error_handlers(app)

    @app.get("/notes/{note}")
    async def look(note: str, session_of: SessionOfDep) -> dict[str, str]:
        if note == "untouched":  # a poll answered from Redis alone
            return {"note": note}
        made.append(1)
        await session_of().execute(INSERT, {"note": note})
        assert session_of() is session_of()  # one session per request
        if note == "refused":
            raise InvalidState("refused after writing")
        return {"note": note}

    return app


async def test_the_session_made_when_first_asked_for(
    services: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that never asks for its session makes none (no session to make, commit
    and close); one that does gets the same transaction as SessionDep's."""
    async with services.sessionmaker() as session:
        await session.execute(CREATE)
        await session.commit()
    sessions: list[int] = []
    real = services.sessionmaker

    def counting() -> AsyncSession:
        sessions.append(1)
        return real()

    monkeypatch.setattr(services, "sessionmaker", counting)
    made: list[int] = []
    transport = httpx.ASGITransport(app=_lazy_app(services, made))
    async with httpx.AsyncClient(transport=transport, base_url="http://db.test") as client:
        assert (await client.get("/notes/untouched")).status_code == 200
        assert sessions == []
        assert (await client.get("/notes/refused")).status_code == 409
        assert (await client.get("/notes/kept")).status_code == 200
    monkeypatch.setattr(services, "sessionmaker", real)
    assert sessions == [1, 1]
    assert await _notes(services) == ["kept"]


async def test_a_session_asked_for_is_closed_and_rolled_back_on_error(
    services: Container,
) -> None:
    async with services.sessionmaker() as session:
        await session.execute(CREATE)
        await session.commit()

    async def failing_request() -> None:
        async with request_transaction_of(SimpleNamespace(container=services)) as session_of:
            await session_of().execute(INSERT, {"note": "never"})
            raise RuntimeError("the request failed")

    with pytest.raises(RuntimeError):
        await failing_request()
    assert "never" not in await _notes(services)
