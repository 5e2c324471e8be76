"""The deployment files, checked offline: the Kubernetes manifests against the API
schemas (kubernetes-validate ships them), the compose file's restart policies, secrets
and health checks, the image's health check for either role, nginx re-resolving the
scaled API and letting operators send what the service accepts."""

import functools
import http.server
import ipaddress
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from app.config import Settings
from tests.test_packaging import _commands

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"
HEALTHCHECK = ROOT / "deploy" / "docker" / "healthcheck.sh"
STRONG = "x" * 48


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every manifest, deploy/k8s/release/ (`kubectl create`d per release) included."""
    found = []
    for path in sorted(K8S.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                meta = document["metadata"]
                name = meta.get("name") or meta["generateName"]
                found.append((f"{path.relative_to(K8S)}:{document['kind']}/{name}", document))
    return found


@pytest.mark.parametrize(("name", "manifest"), manifests(), ids=[n for n, _ in manifests()])
def test_each_manifest_is_valid_for_kubernetes(name: str, manifest: dict[str, Any]) -> None:
    kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def by_kind() -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for _name, manifest in manifests():
        kinds.setdefault(manifest["kind"], []).append(manifest)
    return kinds


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def test_the_api_is_probed_drained_scaled_and_protected() -> None:
    kinds = by_kind()
    api = next(d for d in kinds["Deployment"] if d["metadata"]["name"] == "seckill-api")
    spec = container(api)
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["lifecycle"]["preStop"]  # out of the endpoints before SIGTERM
    assert api["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 30
    assert {h["spec"]["scaleTargetRef"]["name"] for h in kinds["HorizontalPodAutoscaler"]} == {
        "seckill-api"
    }
    assert {p["metadata"]["name"] for p in kinds["PodDisruptionBudget"]} >= {
        "seckill-api",
        "seckill-worker",
    }
    assert kinds["ConfigMap"]
    assert kinds["Secret"]


def test_the_worker_is_probed_by_a_real_command() -> None:
    worker = next(d for d in by_kind()["Deployment"] if d["metadata"]["name"] == "seckill-worker")
    probe = container(worker)["livenessProbe"]["exec"]["command"]
    assert probe[:2] == ["seckill", "healthcheck"]
    assert "healthcheck" in _commands()
    config = next(m for _n, m in manifests() if m["kind"] == "ConfigMap")
    assert config["data"]["SECKILL_WORKER_HEARTBEAT_FILE"]


def test_compose_restarts_services_and_checks_the_worker() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("postgres", "redis", "api", "worker", "lb"):
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "on-failure"
    assert services["worker"]["healthcheck"]["test"][1:3] == ["seckill", "healthcheck"]
    assert "SECKILL_WORKER_HEARTBEAT_FILE" in services["worker"]["environment"]


def test_nginx_re_resolves_the_scaled_api() -> None:
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    assert re.search(r"^\s*resolver\s+127\.0\.0\.11\b", conf, re.MULTILINE)
    assert re.search(r"server\s+api:8000\s+resolve;", conf)
    assert re.search(r"zone\s+seckill_api\s", conf)


# -- nginx -------------------------------------------------------------------------------


def _nginx_bytes(size: str) -> int:
    units = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", size.lower()).groups()  # type: ignore[union-attr]
    return int(number) * units[unit]


def test_nginx_lets_operators_send_what_the_service_accepts() -> None:
    """A bulk grant (up to SECKILL_MAX_ADMIN_BODY_BYTES) must not meet nginx's 64k cap,
    while shoppers' bodies stay capped at SECKILL_MAX_BODY_BYTES."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text()
    defaults = Settings()
    server = re.search(r"^    client_max_body_size\s+(\w+);", conf, re.MULTILINE)
    assert server is not None
    assert _nginx_bytes(server.group(1)) == defaults.max_body_bytes
    admin = re.search(r"location \^~ /api/v1/admin/ \{(?P<body>[^}]*)\}", conf)
    assert admin is not None, "no location for the admin API"
    size = re.search(r"client_max_body_size\s+(\w+);", admin.group("body"))
    assert size is not None
    assert _nginx_bytes(size.group(1)) == defaults.max_admin_body_bytes
    assert "proxy_pass http://seckill_api;" in admin.group("body")


# -- Kubernetes --------------------------------------------------------------------------


def _deployment(name: str) -> dict[str, Any]:
    return next(d for d in by_kind()["Deployment"] if d["metadata"]["name"] == name)


def _settings_from(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> Settings:
    """Settings as a process whose SECKILL_ variables are exactly `environment` reads them."""
    for name in list(os.environ):
        if name.startswith("SECKILL_"):
            monkeypatch.delenv(name)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return Settings()


def test_kubernetes_sets_every_production_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ConfigMap plus the Secret (its empty values filled in, as the operator does)
    start a production process."""
    config = next(m for _n, m in manifests() if m["kind"] == "ConfigMap")
    secret = next(m for _n, m in manifests() if m["kind"] == "Secret")
    environment = dict(config["data"])
    environment.update(dict.fromkeys(secret["stringData"], STRONG))
    environment["SECKILL_DATABASE_URL"] = "postgresql://seckill@db:5432/seckill"
    settings = _settings_from(monkeypatch, environment)
    assert settings.metrics_token is not None


def test_kubernetes_believes_the_ingress_for_client_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Behind the ingress every request's peer is an ingress pod: unless the pod network
    is trusted, every shopper shares that pod's per-address limit."""
    config = next(m for _n, m in manifests() if m["kind"] == "ConfigMap")
    environment = {**config["data"], "SECKILL_ENV": "development"}
    trusted = _settings_from(monkeypatch, environment).trusted_proxies
    # Pod networks of the common CNIs (flannel, calico, a kind or EKS cluster's VPC).
    for pod in ("10.244.1.7", "192.168.3.9", "172.31.20.4"):
        assert any(ipaddress.ip_address(pod) in network for network in trusted), pod


def test_the_worker_serves_its_metrics_port() -> None:
    worker = container(_deployment("seckill-worker"))
    args = worker["args"]
    assert args[0] == "worker"
    port = int(args[args.index("--metrics-port") + 1])
    assert args[args.index("--metrics-host") + 1] == "0.0.0.0"
    assert {"name": "metrics", "containerPort": port} in worker["ports"]


def test_each_release_creates_its_own_migration_job_that_is_cleaned_up() -> None:
    jobs = by_kind()["Job"]
    assert jobs
    for job in jobs:
        assert "name" not in job["metadata"]
        assert job["metadata"]["generateName"].endswith("-")
        assert job["spec"]["ttlSecondsAfterFinished"] > 0
    # `kubectl apply -f deploy/k8s/` (no recursion) must not meet a generateName.
    for path in K8S.glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            assert "generateName" not in document["metadata"], path.name


# -- compose -----------------------------------------------------------------------------

_REQUIRED = re.compile(r"\$\{(?P<name>\w+):\?[^}]+\}")
_DEFAULTED = re.compile(r"\$\{(?P<name>\w+):-(?P<default>[^}]*)\}")


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return compose


def _environments(compose: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        name: {k: str(v) for k, v in service.get("environment", {}).items()}
        for name, service in compose["services"].items()
    }


def test_compose_takes_every_password_and_secret_from_the_operator() -> None:
    """`${VAR:?message}` for each: compose refuses to start until it is set (a value
    written in the file would be public)."""
    for service, environment in _environments(_compose()).items():
        for name, value in environment.items():
            if re.search(r"PASSWORD|SECRET|TOKEN", name):
                assert _REQUIRED.fullmatch(value), f"{service}: {name}={value}"
            userinfo = re.match(r"\w+(?:\+\w+)?://[^/@:]*:(?P<password>[^@]*)@", value)
            if userinfo:
                assert _REQUIRED.fullmatch(userinfo["password"]), f"{service}: {name}"


def test_compose_sets_every_production_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    def interpolate(value: str) -> str:
        value = _REQUIRED.sub(STRONG, value)
        return _DEFAULTED.sub(lambda m: m["default"], value)

    environments = _environments(_compose())
    for service in ("migrate", "api", "worker"):
        environment = {k: interpolate(v) for k, v in environments[service].items()}
        assert _settings_from(monkeypatch, environment).metrics_token is not None, service
    # The password Postgres is initialised with is the one in the services' URL.
    assert (
        environments["postgres"]["POSTGRES_PASSWORD"] in environments["api"]["SECKILL_DATABASE_URL"]
    )


# -- the image ---------------------------------------------------------------------------


def test_the_image_checks_the_health_of_the_role_it_runs() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    check = re.search(r'^HEALTHCHECK .*\n\s+CMD \["([\w-]+)"\]', dockerfile, re.MULTILINE)
    assert check is not None
    copied = re.search(rf"^COPY (\S+) /usr/local/bin/{check.group(1)}$", dockerfile, re.MULTILINE)
    assert copied is not None
    assert ROOT / copied.group(1) == HEALTHCHECK
    assert os.access(HEALTHCHECK, os.X_OK)
    # A plain `docker run IMAGE worker` has a heartbeat to check.
    assert re.search(r"^\s+SECKILL_WORKER_HEARTBEAT_FILE=/\S+", dockerfile, re.MULTILINE)


WORKER_CHECK = "seckill healthcheck --worker --max-age 30"


def _api_check(port: int) -> str:
    return f"python http://127.0.0.1:{port}/healthz"


def _run_healthcheck(cmdline: Path, command: list[str], path: str) -> int:
    """The image's check for a container whose first process is `command`."""
    cmdline.write_bytes(b"\0".join(a.encode() for a in command) + b"\0")
    return subprocess.run(
        [str(HEALTHCHECK), str(cmdline)], env={"PATH": path}, capture_output=True, check=False
    ).returncode


@pytest.mark.parametrize(
    ("command", "checked"),
    [
        pytest.param(
            ["seckill", "serve", "--host", "0.0.0.0", "--port", "8000", "--workers", "2"],
            _api_check(8000),
            id="api",
        ),
        pytest.param(["seckill", "serve", "--port=9000"], _api_check(9000), id="api-other-port"),
        pytest.param(["seckill", "worker"], WORKER_CHECK, id="worker"),
        pytest.param(
            ["/sbin/docker-init", "--", "seckill", "worker", "--metrics-port", "9101"],
            WORKER_CHECK,
            id="worker-under-init",
        ),
        pytest.param(["seckill", "migrate"], None, id="one-shot"),
    ],
)
def test_the_image_health_check_follows_the_command(
    tmp_path: Path, command: list[str], checked: str | None
) -> None:
    """The container's first process says its role; stand-ins for `seckill` and `python`
    record what the check asked (python: the URL, its last argument)."""
    calls = tmp_path / "calls"
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir()
    (stand_ins / "seckill").write_text(f'#!/bin/sh\necho "seckill $*" >> {calls}\n')
    (stand_ins / "python").write_text(
        f'#!/bin/sh\nfor last; do :; done\necho "python $last" >> {calls}\n'
    )
    for stand_in in stand_ins.iterdir():
        stand_in.chmod(0o755)
    status = _run_healthcheck(tmp_path / "cmdline", command, f"{stand_ins}:/usr/bin:/bin")
    assert status == 0
    recorded = calls.read_text().splitlines() if calls.exists() else []
    assert recorded == ([checked] if checked else [])


def test_the_image_health_check_asks_the_api_on_its_port(tmp_path: Path) -> None:
    """With the real interpreter: healthy while /healthz answers on the --port given,
    unhealthy once nothing listens there."""
    (tmp_path / "healthz").write_text("ok")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    command = ["seckill", "serve", "--host", "0.0.0.0", "--port", str(port)]
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    try:
        assert _run_healthcheck(tmp_path / "cmdline", command, path) == 0
    finally:
        server.shutdown()
        server.server_close()
    assert _run_healthcheck(tmp_path / "cmdline", command, path) == 1


def test_the_image_health_check_fails_when_the_worker_is_stale(tmp_path: Path) -> None:
    """With the real `seckill healthcheck`: no heartbeat yet is unhealthy, a fresh one
    healthy."""
    cmdline = tmp_path / "cmdline"
    cmdline.write_bytes(b"seckill\0worker\0")
    heartbeat = tmp_path / "alive"
    environment = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "SECKILL_WORKER_HEARTBEAT_FILE": str(heartbeat),
        "PYTHONPATH": str(ROOT),
    }

    def check() -> int:
        return subprocess.run(
            [str(HEALTHCHECK), str(cmdline)], env=environment, capture_output=True, check=False
        ).returncode

    assert check() == 1
    heartbeat.touch()
    assert check() == 0
