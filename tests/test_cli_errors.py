"""CLI mistakes print one line saying what is wrong and the fix, exit 1, and show no
traceback: a wrong database URL, Postgres or Redis down, an unmigrated or missing
database, a bad migration revision."""

from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from app.config import Settings
from tests.support.outages import closed_port
from tests.support.processes import start_cli


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


async def test_a_database_url_that_is_not_one(settings: Settings, tmp_path: Path) -> None:
    wrong = settings.model_copy(update={"database_url": "postgres//nohost"})
    line = await explained(wrong, tmp_path, "event", "list")
    assert "SECKILL_DATABASE_URL must look like postgresql+asyncpg://" in line


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
