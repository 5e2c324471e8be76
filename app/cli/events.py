"""`seckill event ...`: the operators' everyday commands, through the same services (and
audit log) as the admin API. Mistakes print one line, not a traceback."""

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.cli.shared import in_transaction, operator, run
from app.container import Container
from app.events import controls
from app.events import service as events
from app.events.schemas import EventCreate, EventRead, EventState, EventUpdate
from app.moments import utc_now

T = TypeVar("T")
events_cli = typer.Typer(help="Flash-sale events: create, list, pause, resume, extend, end.")
EventArg = Annotated[int, typer.Argument(min=1, help="The event's id.")]


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

    async def create_it(services: Container, session: AsyncSession) -> int:
        event = await events.create_event(
            session=session, services=services, data=data, actor=operator()
        )
        return event.id

    async def work(services: Container) -> str:
        event_id = await in_transaction(services, lambda session: create_it(services, session))
        return await _changed(services, event_id)

    print(run(work))


def _change(event_id: int, change: Callable[[Container, AsyncSession], Awaitable[object]]) -> None:
    """Apply one change to the event in its own transaction, then print the event."""

    async def work(services: Container) -> str:
        await in_transaction(services, lambda session: change(services, session))
        return await _changed(services, event_id)

    print(run(work))


def _set_paused(event_id: int, paused: bool) -> None:
    async def set_it(services: Container, session: AsyncSession) -> object:
        return await events.set_paused(
            session=session, services=services, actor=operator(), event_id=event_id, paused=paused
        )

    _change(event_id, set_it)


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

    async def extend_it(services: Container, session: AsyncSession) -> object:
        event = await events.get_event_row(session=session, event_id=event_id)
        return await controls.update_event(
            session=session,
            services=services,
            actor=operator(),
            event_id=event_id,
            data=EventUpdate(ends_at=event.ends_at + timedelta(minutes=minutes)),
            now=utc_now(),
        )

    _change(event_id, extend_it)


@events_cli.command()
def end(event_id: EventArg) -> None:
    """End the sale now."""

    async def end_it(services: Container, session: AsyncSession) -> object:
        return await controls.end_event(
            session=session, services=services, actor=operator(), event_id=event_id, now=utc_now()
        )

    _change(event_id, end_it)
