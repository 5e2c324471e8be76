"""Zero-config mode: `seckill serve` with embedded Postgres and Redis keeps its data across
restarts and leaves no server behind when stopped."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from tests.conftest import TEST_JWT_SECRET
from tests.support.factories import Auth, event_spec, item_spec

SECKILL = Path(sys.executable).with_name("seckill")
START_DEADLINE_SECONDS = 120.0
STOP_DEADLINE_SECONDS = 60.0

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds processes through /proc"),
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _processes_naming(folder: Path) -> list[int]:
    """Processes whose command line mentions this folder (the embedded servers name
    their data folder or socket there)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if str(folder) in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode():
                found.append(int(entry.name))
    return found


def _service_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SECKILL_")}
    env.update(SECKILL_DATA_DIR=str(data_dir), SECKILL_JWT_SECRET=TEST_JWT_SECRET)
    return env


class Service:
    """`seckill serve` as a child process."""

    def __init__(self, data_dir: Path, log: Path, *, own_group: bool = False) -> None:
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("ab") as output:
            self.process = subprocess.Popen(
                [str(SECKILL), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=_service_env(data_dir),
                stdout=output,
                stderr=subprocess.STDOUT,
                # As in a terminal: the service and its children share a process group.
                process_group=0 if own_group else None,
            )

    def interrupt(self) -> int:
        """Ctrl-C in its terminal: SIGINT to the whole process group."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=STOP_DEADLINE_SECONDS)

    def wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}/readyz", timeout=2.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError(f"not ready in time:\n{self.log.read_text()}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=STOP_DEADLINE_SECONDS)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    folder = (tmp_path / "data").resolve()
    yield folder
    # Whatever the outcome, no server started by this test outlives it.
    for pid in _processes_naming(folder):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def running(data_dir: Path, log: Path) -> Iterator[Service]:
    service = Service(data_dir, log)
    try:
        service.wait_until_ready()
        yield service
    finally:
        service.kill()


def test_embedded_service_keeps_its_data_and_cleans_up(data_dir: Path, tmp_path: Path) -> None:
    auth = Auth(Settings(jwt_secret=TEST_JWT_SECRET))
    log = tmp_path / "service.log"
    spec = event_spec(items=[item_spec(sku="EMB-1", stock=5, per_user_limit=2)])

    with running(data_dir, log) as service:
        created = httpx.post(
            f"{service.base_url}/api/v1/admin/events", json=spec, headers=auth.admin()
        )
        assert created.status_code == 201, created.text
        event: dict[str, Any] = created.json()
        item_id = event["items"][0]["id"]
        bought = httpx.post(
            f"{service.base_url}/api/v1/items/{item_id}/purchase",
            json={"quantity": 2},
            headers=auth.headers("shopper-1"),
        )
        assert bought.status_code == 202, bought.text
        assert _processes_naming(data_dir), "the embedded servers run under the data folder"
        service.stop()
    assert _processes_naming(data_dir) == [], log.read_text()

    with running(data_dir, log) as service:
        read = httpx.get(f"{service.base_url}/api/v1/events/{event['id']}")
        assert read.status_code == 200, read.text
        assert read.json()["name"] == event["name"]
        item = httpx.get(f"{service.base_url}/api/v1/items/{item_id}").json()
        assert (item["stock"], item["remaining"]) == (5, 3)
        service.stop()
    assert _processes_naming(data_dir) == [], log.read_text()


def test_a_start_prints_what_matters_and_ctrl_c_stops_quietly(
    data_dir: Path, tmp_path: Path
) -> None:
    """The first start (initdb, migrations) prints none of pgserver's, alembic's or
    platformdirs' chatter; a command run beside it says it uses the running servers (it
    started nothing); Ctrl-C, which reaches every process of the terminal's group, stops
    the service without reporting its Redis lost."""
    log = tmp_path / "service.log"
    service = Service(data_dir, log, own_group=True)
    try:
        service.wait_until_ready()
        beside = subprocess.run(
            [str(SECKILL), "event", "list"],
            env=_service_env(data_dir),
            capture_output=True,
            text=True,
            timeout=START_DEADLINE_SECONDS,
            check=False,
        )
        assert beside.returncode == 0, beside.stderr
        assert "started embedded" not in beside.stderr, beside.stderr
        assert "using the embedded Postgres already running" in beside.stderr, beside.stderr
        assert len(beside.stderr.strip().splitlines()) == 2, beside.stderr
        service.interrupt()
    finally:
        service.kill()
    output = log.read_text()
    for noise in ("pgserver", "alembic", "XDG_RUNTIME_DIR", "initdb", "subscription lost"):
        assert noise not in output, output
    assert output.count("started embedded Postgres") == 1, output
    assert output.count("started embedded Redis") == 1, output
    assert _processes_naming(data_dir) == [], output
