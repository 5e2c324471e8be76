"""`seckill event ...`: the operators' everyday commands, through the same services (and
audit log) as the admin API. Mistakes print one line, not a traceback."""

import asyncio
import getpass
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError

from app.auth import User
from app.config import Settings
from app.container import Container
from app.db import commit
from app.errors import AppError
from app.events import controls
from app.events import service as events
from app.events.schemas import EventCreate, EventRead, EventState, EventUpdate
from app.moments import utc_now

T = TypeVar("T")
events_cli = typer.Typer(help="Flash-sale events: create, list, pause, resume, extend, end.")
EventArg = Annotated[int, typer.Argument(min=1, help="The event's id.")]


def operator() -> User:
    return User(id=f"cli:{getpass.getuser()}", is_admin=True)


def run(work: Callable[[Container], Awaitable[T]]) -> T:
    from app.cli import _servers, _settings
    from app.main import build_services

    async def go(settings: Settings) -> T:
        async with build_services(settings) as services:
            return await work(services)

    with _servers(_settings()) as settings:
        try:
            return asyncio.run(go(settings))
        except AppError as exc:
            typer.secho(f"{exc.code}: {exc.detail}", fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from exc


def _line(event: EventRead) -> str:
    items = ", ".join(f"#{i.id} {i.sku} {i.remaining}/{i.stock} {i.state}" for i in event.items)
    paused = " (paused)" if event.paused else ""
    return (
        f"{event.id}\t{event.state}{paused}\t{event.starts_at.isoformat()} .. "
        f"{event.ends_at.isoformat()}\t{event.name}\t[{items}]"
    )


async def _changed(services: Container, event_id: int) -> str:
    async with services.sessionmaker() as session:
        return _line(await events.get_event(session=session, services=services, event_id=event_id))


@events_cli.command("list")
def list_events(
    state: Annotated[EventState | None, typer.Option(help="upcoming, live or ended.")] = None,
    paused: Annotated[
        bool | None, typer.Option("--paused/--running", help="Only paused, or running.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200)] = 50,
) -> None:
    """Events by start time with their items' live stock."""

    async def work(services: Container) -> list[EventRead]:
        async with services.sessionmaker() as session:
            return await events.list_events(
                session=session,
                services=services,
                state=state,
                paused=paused,
                limit=limit,
                offset=0,
            )

    for event in run(work):
        print(_line(event))


@events_cli.command("create")
def create(
    spec: Annotated[Path, typer.Argument(help="JSON file: the body of POST /admin/events.")],
) -> None:
    """Create a sale from a JSON file (as POST /api/v1/admin/events takes it)."""
    try:
        data = EventCreate.model_validate(json.loads(spec.read_text()))
    except (OSError, json.JSONDecodeError) as exc:
        typer.secho(f"cannot read {spec}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        typer.secho(f"invalid event in {spec}: {fields}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc

    async def work(services: Container) -> str:
        async with services.sessionmaker() as session:
            event = await events.create_event(
                session=session, services=services, data=data, actor=operator()
            )
            await commit(session)
        return await _changed(services, event.id)

    print(run(work))


def _set_paused(event_id: int, paused: bool) -> None:
    async def work(services: Container) -> str:
        async with services.sessionmaker() as session:
            await events.set_paused(
                session=session,
                services=services,
                actor=operator(),
                event_id=event_id,
                paused=paused,
            )
            await commit(session)
        return await _changed(services, event_id)

    print(run(work))


@events_cli.command()
def pause(event_id: EventArg) -> None:
    """Stop selling at once."""
    _set_paused(event_id, True)


@events_cli.command()
def resume(event_id: EventArg) -> None:
    """Sell again."""
    _set_paused(event_id, False)


@events_cli.command()
def extend(
    event_id: EventArg,
    minutes: Annotated[int, typer.Option(min=-1440, max=1440, help="Minutes (<0 shortens).")],
) -> None:
    """Move the sale's end by MINUTES (it must stay in the future)."""

    async def work(services: Container) -> str:
        async with services.sessionmaker() as session:
            event = await events.get_event_row(session=session, event_id=event_id)
            ends_at = event.ends_at + timedelta(minutes=minutes)
            await controls.update_event(
                session=session,
                services=services,
                actor=operator(),
                event_id=event_id,
                data=EventUpdate(ends_at=ends_at),
                now=utc_now(),
            )
            await commit(session)
        return await _changed(services, event_id)

    print(run(work))


@events_cli.command()
def end(event_id: EventArg) -> None:
    """End the sale now."""

    async def work(services: Container) -> str:
        async with services.sessionmaker() as session:
            await controls.end_event(
                session=session,
                services=services,
                actor=operator(),
                event_id=event_id,
                now=utc_now(),
            )
            await commit(session)
        return await _changed(services, event_id)

    print(run(work))
