"""`seckill event ...` against a real database and Redis: create, list, pause, resume,
extend, end; each change lands in the audit log; mistakes are one line."""

import json
from pathlib import Path

from sqlalchemy import text

from app.container import Container
from tests.support.factories import event_spec, item_spec
from tests.support.processes import start_cli

RUNS = iter(range(1_000_000))


async def run(services: Container, tmp_path: Path, *args: str) -> tuple[int, str]:
    log = tmp_path / f"cli-{next(RUNS)}.log"
    process = await start_cli(services.settings, "event", *args, log=log)
    code = await process.wait()
    return code, log.read_text()


async def test_event_commands(services: Container, tmp_path: Path) -> None:
    spec = tmp_path / "sale.json"
    spec.write_text(json.dumps(event_spec(name="CLI sale", items=[item_spec(stock=7)])))

    code, created = await run(services, tmp_path, "create", str(spec))
    assert code == 0, created
    event_id = created.split("\t")[0].strip().splitlines()[-1]
    assert "CLI sale" in created

    for args in (
        ["pause", event_id],
        ["resume", event_id],
        ["extend", event_id, "--minutes", "30"],
    ):
        code, out = await run(services, tmp_path, *args)
        assert code == 0, out
    code, listed = await run(services, tmp_path, "list", "--state", "live")
    assert code == 0
    assert "CLI sale" in listed
    code, ended = await run(services, tmp_path, "end", event_id)
    assert code == 0, ended
    assert "\tended\t" in ended

    async with services.sessionmaker() as session:
        actions = (
            await session.scalars(
                text("SELECT action FROM operator_actions WHERE event_id = :e ORDER BY id"),
                {"e": int(event_id)},
            )
        ).all()
    assert actions == ["event.create", "event.pause", "event.resume", "event.update", "event.end"]

    code, missing = await run(services, tmp_path, "pause", "999999")
    assert code == 1
    assert missing.strip().splitlines()[-1] == "not_found: No event 999999."
    assert "Traceback" not in missing
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code, invalid = await run(services, tmp_path, "create", str(bad))
    assert code == 2
    assert "Traceback" not in invalid
    assert invalid.strip().startswith(f"invalid event in {bad}: name: Field required")
