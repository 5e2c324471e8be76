"""The request's session owns the transaction: commit on success, then the after-commit
callbacks; rollback on error, and no callback."""

import httpx
from fastapi import FastAPI
from sqlalchemy import text

from app.container import Container
from app.db import SessionDep, after_commit, commit
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
