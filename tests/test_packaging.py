"""What can be checked of the image without a Docker engine: the wheel carries the Lua
scripts, migrations and pages and finds them once installed; Dockerfile and compose file name
real commands and settings."""

import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli.main import cli
from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)],
        check=True,
    )  # fmt: skip
    (built,) = out.glob("seckill-*.whl")
    return built


def test_the_wheel_carries_scripts_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for script in (ROOT / "lua").glob("*.lua"):
        assert f"app/lua/{script.name}" in names
    for migration in (ROOT / "migrations" / "versions").glob("*.py"):
        assert f"app/migrations/versions/{migration.name}" in names
    assert "app/migrations/env.py" in names
    # The pages the app serves itself (the dashboard, the storefront).
    for page in [*(ROOT / "app/live/static").iterdir(), *(ROOT / "app/access/static").iterdir()]:
        assert page.relative_to(ROOT).as_posix() in names


def test_an_installed_package_finds_its_own_scripts_and_migrations(
    wheel: Path, tmp_path: Path
) -> None:
    zipfile.ZipFile(wheel).extractall(tmp_path)
    found = subprocess.run(
        [sys.executable, "-c",
         "from app.store.scripts import lua_dir; from app.db import migrations_dir;"
         "print(lua_dir()); print(migrations_dir())"],
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )  # fmt: skip
    lua, migrations = found.stdout.split()
    assert Path(lua) == tmp_path / "app" / "lua"
    assert Path(migrations) == tmp_path / "app" / "migrations"


def _commands() -> set[str]:
    return {c.name or (c.callback.__name__ if c.callback else "") for c in cli.registered_commands}


def test_the_dockerfile_runs_real_commands() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, flags=re.MULTILINE):
        assert (ROOT / source).exists(), source
    assert 'ENTRYPOINT ["seckill"]' in dockerfile
    cmd = re.search(r'^CMD \["(\w+)"', dockerfile, flags=re.MULTILINE)
    assert cmd is not None
    assert cmd.group(1) in _commands()


def test_the_compose_file_uses_real_commands_and_settings() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    settings = {f"SECKILL_{name.upper()}" for name in Settings.model_fields}
    built = {n: s for n, s in compose["services"].items() if "build" in s}
    assert set(built) == {"migrate", "api", "worker"}
    for service in built.values():
        assert service["command"][0] in _commands()
        assert set(service["environment"]) <= settings
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    assert "server api:8000" in nginx


def test_the_compose_file_ships_no_secret() -> None:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment = compose["x-seckill-env"]
    for name in ("SECKILL_JWT_SECRET", "SECKILL_PAYMENT_WEBHOOK_SECRET", "SECKILL_PASS_SECRET"):
        # `${VAR:?message}`: compose refuses to start unless the operator sets it.
        assert re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", environment[name]), environment[name]
