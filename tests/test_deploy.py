"""The deployment files, checked offline: the Kubernetes manifests against the API
schemas (kubernetes-validate ships them), the compose file's restart policies and the
worker's health check, nginx re-resolving the scaled API."""

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.test_packaging import _commands

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSION = "1.30.0"


def manifests() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                found.append(
                    (f"{path.name}:{document['kind']}/{document['metadata']['name']}", document)
                )
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
