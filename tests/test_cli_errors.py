"""CLI mistakes print one line saying what is wrong and the fix, exit 1, and show no
traceback: a wrong database URL, Postgres or Redis down, an unmigrated or missing
database, a bad migration revision; for the operators' commands and for the start of
`seckill serve` alike."""

import asyncio
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from app.config import Settings
from tests.support.outages import closed_port
from tests.support.processes import settings_environment, start_cli


async def explained(settings: Settings, tmp_path: Path, *args: str) -> str:
    log = tmp_path / "cli.log"
    process = await start_cli(settings, *args, log=log)
    code = await process.wait()
    output = log.read_text()
    assert code == 1, output
    assert "Traceback" not in output, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("seckill: "), output
    return last


def database(settings: Settings, *, port: int | None = None, name: str | None = None) -> str:
    assert settings.database_url
    url = make_url(settings.database_url)
    return url.set(port=port or url.port, database=name or url.database).render_as_string(False)


@pytest.mark.parametrize("command", [("event", "list"), ("audit",), ("migrate",)])
async def test_postgres_down(settings: Settings, tmp_path: Path, command: tuple[str, ...]) -> None:
    down = settings.model_copy(update={"database_url": database(settings, port=closed_port())})
    line = await explained(down, tmp_path, *command)
    assert "cannot use Postgres" in line
    assert "SECKILL_DATABASE_URL" in line


def only_line(output: str) -> str:
    """The one line a start that failed printed (nothing else: no log, no traceback)."""
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


SERVE = ("serve", "--port", str(closed_port()))


async def test_serve_with_postgres_down(settings: Settings, tmp_path: Path) -> None:
    down = settings.model_copy(update={"database_url": database(settings, port=closed_port())})
    line = await explained(down, tmp_path, *SERVE)
    assert "cannot use Postgres" in line
    assert "start it or fix SECKILL_DATABASE_URL" in line
    assert only_line((tmp_path / "cli.log").read_text()) == line


async def test_serve_with_redis_down(settings: Settings, tmp_path: Path) -> None:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port()}/0"})
    line = await explained(down, tmp_path, *SERVE)
    assert "cannot reach Redis" in line
    assert "start it or fix SECKILL_REDIS_URL" in line
    assert only_line((tmp_path / "cli.log").read_text()) == line


async def test_serve_on_an_unmigrated_database(
    settings: Settings, empty_database: str, tmp_path: Path
) -> None:
    empty = settings.model_copy(update={"database_url": empty_database})
    line = await explained(empty, tmp_path, *SERVE)
    assert "run `seckill migrate` first" in line


@pytest.mark.parametrize("command", [("event", "list"), SERVE, ("worker",)])
async def test_a_redis_url_that_is_not_one(
    settings: Settings, tmp_path: Path, command: tuple[str, ...]
) -> None:
    wrong = settings.model_copy(update={"redis_url": "http://127.0.0.1:6379/0"})
    line = await explained(wrong, tmp_path, *command)
    assert "SECKILL_REDIS_URL must look like redis://" in line
    assert "not http://" in line


async def test_a_server_lost_during_the_start_of_serve(settings: Settings, tmp_path: Path) -> None:
    """Past the check (a server gone between the check and uvicorn's start-up): uvicorn's
    lifespan fails, and that too is one line and exit 1, not its traceback and exit 3."""
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port()}/0"})
    start = (
        "import sys, typer; from app.config import get_settings; "
        "from app.cli.processes import serve_api\n"
        "try:\n"
        f"    serve_api(get_settings(), '127.0.0.1', {closed_port()}, 1)\n"
        "except typer.Exit as stop:\n"
        "    sys.exit(stop.exit_code)\n"
    )
    log = tmp_path / "serve.log"
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", start, env=settings_environment(down), stdout=out, stderr=out
        )
    code = await process.wait()
    output = log.read_text()
    assert code == 1, output
    assert "Traceback" not in output, output
    last = output.strip().splitlines()[-1]
    assert last.startswith("seckill: the API did not start (redis.exceptions.ConnectionError")
    assert "SECKILL_REDIS_URL" in last


@pytest.mark.parametrize("url", ["postgres//nohost", "mysql://user:hunter2@host/db"])
async def test_a_database_url_that_is_not_one(settings: Settings, tmp_path: Path, url: str) -> None:
    wrong = settings.model_copy(update={"database_url": url})
    line = await explained(wrong, tmp_path, "event", "list")
    # The form README documents (a plain postgresql:// URL).
    assert "SECKILL_DATABASE_URL must look like postgresql://user:password@host" in line
    if "://" in url:
        assert line.endswith("not mysql://host/db."), line
        assert "hunter2" not in line


async def test_a_missing_database(settings: Settings, tmp_path: Path) -> None:
    missing = settings.model_copy(
        update={"database_url": database(settings, name="seckill_no_such_db")}
    )
    line = await explained(missing, tmp_path, "event", "list")
    assert "does not exist" in line


async def test_an_unmigrated_database(
    settings: Settings, empty_database: str, tmp_path: Path
) -> None:
    empty = settings.model_copy(update={"database_url": empty_database})
    line = await explained(empty, tmp_path, "event", "list")
    assert "run `seckill migrate` first" in line


async def test_redis_down(settings: Settings, tmp_path: Path) -> None:
    down = settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{closed_port()}/0"})
    line = await explained(down, tmp_path, "audit")
    assert "cannot reach Redis" in line
    assert "SECKILL_REDIS_URL" in line


async def test_a_bad_revision(settings: Settings, empty_database: str, tmp_path: Path) -> None:
    empty = settings.model_copy(update={"database_url": empty_database})
    line = await explained(empty, tmp_path, "migrate", "no-such-revision")
    assert "Can't locate revision identified by 'no-such-revision'" in line
