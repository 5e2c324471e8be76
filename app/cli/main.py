"""The `seckill` command: one Typer app, each command group in its own module."""

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
    operations.grant,
    operations.report,
)
for command in COMMANDS:
    cli.command()(command)
cli.command("dead-letters")(operations.dead_letters)
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
        if line is None:
            raise
        typer.secho(f"seckill: {line}", fg=typer.colors.RED, err=True)
        raise SystemExit(1) from None
