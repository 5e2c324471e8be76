"""`make loadtest` (loadtests/run.sh): its default crowd sells its sale out, and the run
ends with one headline line. The crowd itself runs in CI (`bash loadtests/smoke.sh`)."""

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOADTESTS = ROOT / "loadtests"


def _default(script: str, knob: str) -> str:
    found = re.search(rf"\$\{{{knob}:-([^}}]+)\}}", script)
    assert found is not None, knob
    return found.group(1)


def test_the_default_crowd_wants_more_than_the_stock() -> None:
    """300 shoppers on the demo's 1,500 units never sold out: the default sale must be
    smaller than what its crowd asks for, and open only once every shopper is counting
    down."""
    run = (LOADTESTS / "run.sh").read_text()
    shoppers = int(_default(run, "SECKILL_LOADTEST_USERS"))
    spawn_rate = int(_default(run, "SECKILL_LOADTEST_SPAWN_RATE"))
    stock = int(_default(run, "SECKILL_LOADTEST_STOCK"))
    limit = int(_default(run, "SECKILL_LOADTEST_LIMIT"))
    locustfile = (LOADTESTS / "locustfile.py").read_text()
    quantities = re.search(r'"SECKILL_LOADTEST_QUANTITIES", "([\d,]+)"', locustfile)
    assert quantities is not None
    wanted = [min(int(q), limit) for q in quantities.group(1).split(",")]
    assert shoppers * min(wanted) > stock  # sells out even if everyone wants the least
    assert "SECKILL_LOADTEST_EVENT_ID:-}" in run  # no event given: it creates its own
    assert "tools.py create-event" in run
    starts_in = subprocess.run(
        ["bash", "-c", f"USERS={shoppers}; SPAWN_RATE={spawn_rate}; echo "
         + _default(run, "SECKILL_LOADTEST_STARTS_IN")],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert float(starts_in.stdout) > shoppers / spawn_rate


def _headline(tmp_path: Path, summary: Mapping[str, object], audit: str) -> list[str]:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    result = subprocess.run(
        [sys.executable, str(LOADTESTS / "tools.py"), "headline", str(path), "--audit", audit],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


SUMMARY: dict[str, float | None] = {
    "requests": 12345,
    "failures": 0,
    "seconds": 30.2,
    "accepted": 400,
    "refused": 600,
    "rate_limited": 3,
    "rush_seconds": 2.0,
    "sold_out_after_seconds": 0.9,
    "purchase_p50_ms": 12,
    "purchase_p99_ms": 85,
}


def test_the_run_ends_with_one_headline_line(tmp_path: Path) -> None:
    (line,) = _headline(tmp_path, SUMMARY, "ok")
    assert line == (
        "loadtest: 12,345 requests in 30 s, 0 failed; rush 2.0 s: accepted 400 (200/s), "
        "refused 600 (300/s), rate-limited 3; sold out 0.9 s into the rush; "
        "purchase p50 12 ms, p99 85 ms; audit: ok"
    )


@pytest.mark.parametrize("audit", ["failed", "not-drained"])
def test_the_headline_names_a_failed_audit(tmp_path: Path, audit: str) -> None:
    summary = {**SUMMARY, "sold_out_after_seconds": None, "rush_seconds": 0.0}
    (line,) = _headline(tmp_path, summary, audit)
    assert line.endswith(f"audit: {audit}")
    assert "not sold out" in line
    assert "accepted 400 (-/s)" in line


def test_the_run_script_prints_the_headline_after_the_audit() -> None:
    run = (LOADTESTS / "run.sh").read_text()
    audit = run.index('seckill" audit "$EVENT_ID"')
    assert run.index("tools.py headline", audit) > audit
    assert "SECKILL_LOADTEST_SUMMARY=" in run
