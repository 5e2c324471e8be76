"""deploy/prometheus/alerts.yml and the Grafana dashboard are well formed and name only
metrics the service exposes (promtool checks the rules too where it is installed)."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.metrics import exposition
from app.processes import ops

ROOT = Path(__file__).resolve().parent.parent
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
METRIC = re.compile(r"\bseckill_[a-z_]+\b")
SUFFIXES = ("_bucket", "_count", "_sum")


def exposed() -> set[str]:
    """Every metric family name /metrics can answer with (this process's and the gauges
    read from Redis at scrape time)."""
    text = exposition().decode() + Path(ops.__file__).read_text()
    names = set(re.findall(r"# TYPE (seckill_[a-z_]+)", text))
    counters = set(re.findall(r"# TYPE (seckill_[a-z_]+) counter", text))
    return names | {f"{n}_total" for n in counters if not n.endswith("_total")}


def family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


def balanced(expr: str) -> bool:
    depth = 0
    for char in expr:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_alert_rules_are_complete() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    assert {g["name"] for g in document["groups"]}
    found = rules()
    names = [r["alert"] for r in found]
    assert len(names) == len(set(names))
    for rule in found:
        assert re.fullmatch(r"Seckill[A-Z][A-Za-z0-9]+", rule["alert"])
        assert isinstance(rule["expr"], str)
        assert balanced(rule["expr"]), rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule["for"])
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


def test_alerts_cover_the_sale_and_name_only_exposed_metrics() -> None:
    known = exposed()
    used: set[str] = set()
    for rule in rules():
        used |= {family(m) for m in METRIC.findall(rule["expr"])}
    assert used <= known, used - known
    expressions = " ".join(r["expr"] for r in rules())
    for needed in (
        "seckill_item_stock_remaining",  # low stock, sold out
        "seckill_orders_queued",  # writer lag
        "seckill_orders_dead_letter",
        "seckill_purchases_total",  # error rate
        "seckill_purchase_seconds_bucket",  # p99
        "seckill_orders_past_ship_by",  # orders not shipped in time
        'seckill_order_transitions_total{to_status="refunded"}',  # refund rate
    ):
        assert needed in expressions


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_grafana_dashboard_is_well_formed(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    known = exposed()
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["type"] in {"timeseries", "stat", "gauge", "table"}
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"])
        assert panel["targets"]
        for target in panel["targets"]:
            assert balanced(target["expr"])
            assert {family(m) for m in METRIC.findall(target["expr"])} <= known


def test_grafana_has_a_dashboard() -> None:
    assert DASHBOARDS


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_rules() -> None:
    checked = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
