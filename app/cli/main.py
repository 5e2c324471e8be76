"""The `seckill` command: one Typer app, each command group in its own module."""

import inspect
import re
from collections.abc import Callable

import typer

from app.cli import operations, processes
from app.cli.errors import explain
from app.cli.events import events_cli
from app.cli.orders import orders_cli
from app.config import Settings, get_settings

cli = typer.Typer(help="seckill: a high-concurrency flash-sale backend.", no_args_is_help=True)
COMMANDS: tuple[Callable[..., None], ...] = (
    processes.serve,
    processes.worker,
    processes.dev,
    processes.healthcheck,
    operations.migrate,
    operations.token,
    operations.recover,
    operations.audit,
    operations.reconcile,
    operations.grant,
    operations.report,
)


def summary(command: Callable[..., None]) -> str:
    """The first sentence of a command's docstring, on one line: the command list shows
    it as written, so a docstring's line breaks would break its sentences."""
    text = " ".join((inspect.getdoc(command) or "").split())
    return re.split(r"(?<=\.)\s", text, maxsplit=1)[0]


for command in COMMANDS:
    cli.command(short_help=summary(command))(command)
cli.command("dead-letters", short_help=summary(operations.dead_letters))(operations.dead_letters)
cli.add_typer(events_cli, name="event")
cli.add_typer(orders_cli, name="orders")


def main() -> None:
    try:
        cli()
    except Exception as exc:
        try:
            settings: Settings | None = get_settings()
        except Exception:
            settings = None
        line = explain(exc, settings)
        if line is None or settings is not None and settings.log_level.upper() == "DEBUG":
            raise
        typer.secho(f"seckill: {line}", fg=typer.colors.RED, err=True)
        raise SystemExit(1) from None
