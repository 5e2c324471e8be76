"""The printed table, the goals (reported, never asserted) and the JSON results."""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.drain import DrainResult
from bench.load import LoadResult
from bench.purchase import HttpPhase

RESULTS_DIR = Path(__file__).with_name("results")


@dataclass(frozen=True)
class Goal:
    name: str
    measured: float
    shown: str
    wanted: str
    met: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "goal": self.name,
            "measured": self.measured,
            "wanted": self.wanted,
            "met": self.met,
        }


def _ratio(value: float, base: float) -> float:
    return value / base if base else float("nan")


def goals(http: HttpPhase | None, drain: DrainResult | None, connections: int) -> list[Goal]:
    found: list[Goal] = []
    if http is not None and {"purchase", "naive", "noop"} <= http.runs.keys():
        purchase = http.runs["purchase"].summary()
        naive = http.runs["naive"].summary().requests_per_second
        noop = http.runs["noop"].summary().requests_per_second
        vs_naive = _ratio(purchase.requests_per_second, naive)
        vs_noop = _ratio(purchase.requests_per_second, noop)
        found += [
            Goal("purchase req/s vs naive", vs_naive, f"{vs_naive:.1f}x", ">= 10x", vs_naive >= 10),
            Goal("purchase req/s vs no-op", vs_noop, f"{vs_noop:.0%}", ">= 50%", vs_noop >= 0.5),
            Goal(
                f"purchase p99 at {connections} connections",
                purchase.p99_ms,
                f"{purchase.p99_ms:.1f} ms",
                "< 50 ms",
                purchase.p99_ms < 50,
            ),
        ]
    if http is not None and {"purchase", "purchase_unlimited"} <= http.runs.keys():
        limited = http.runs["purchase"]
        unlimited = http.runs["purchase_unlimited"]
        vs_unlimited = _ratio(
            limited.summary().requests_per_second, unlimited.summary().requests_per_second
        )
        found.append(
            Goal(
                "purchase req/s, rate limiter on vs off",
                vs_unlimited,
                f"{vs_unlimited:.1%}",
                ">= 95%",
                vs_unlimited >= 0.95,
            )
        )
        limited_cpu, unlimited_cpu = limited.cpu_us(), unlimited.cpu_us()
        if limited_cpu and unlimited_cpu:
            extra = limited_cpu / unlimited_cpu - 1
            found.append(
                Goal(
                    "purchase CPU/req, rate limiter on vs off",
                    extra,
                    f"{extra:+.1%}",
                    "<= +5%",
                    extra <= 0.05,
                )
            )
    if drain is not None:
        rate = drain.orders_per_second
        found.append(
            Goal(
                "order writer drain",
                rate,
                f"{rate:,.0f} orders/s",
                ">= 10,000 orders/s",
                rate >= 10_000 and drain.complete,
            )
        )
    return found


def _row(label: str, r: LoadResult, cpu_us: float | None, naive: float, noop: float) -> str:
    rate = r.requests_per_second
    cpu = f"{cpu_us:>8.0f}" if cpu_us is not None else f"{'-':>8}"
    return (
        f"{label:<27} {rate:>9,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
        f"{_ratio(rate, naive):>8.2f}x {_ratio(rate, noop):>8.0%} "
        f"{r.non_2xx + r.socket_errors:>9,} {cpu}"
    )


def print_http(
    http: HttpPhase, *, connections: int, seconds: float, rounds: int, api_workers: int = 1
) -> None:
    summaries = {key: runs.summary() for key, runs in http.runs.items()}
    nan = float("nan")
    naive = summaries["naive"].requests_per_second if "naive" in summaries else nan
    noop = summaries["noop"].requests_per_second if "noop" in summaries else nan
    print(
        f"\nHTTP: {api_workers} API process(es), {connections} connections, {seconds:g} s per "
        f"run, median of {rounds} round(s)"
    )
    print(
        f"{'target':<27} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs naive':>9} "
        f"{'vs no-op':>8} {'non-2xx*':>9} {'CPU µs**':>8}"
    )
    for key, runs in http.runs.items():
        print(_row(runs.target.label, summaries[key], runs.cpu_us(), naive, noop))
    print("*  non-2xx answers plus socket errors; the sold-out row is all 409 by design.")
    print("** CPU time of the API process per request: steadier than req/s on a shared machine.")
    for name, check in http.checks.items():
        state = "ok" if check["consistent"] else "MISMATCH"
        stored = check.get("orders_in_postgres")
        print(
            f"stock check {name}: {check['stock_taken']:,} units taken, "
            f"{check['answered_2xx']:,} 2xx counted by wrk ({state})"
            + (f"; {stored:,} orders already in Postgres" if stored else "")
        )


def print_drain(drain: DrainResult) -> None:
    print(
        f"\nOrder writer: {drain.orders:,} orders drained in {drain.drain_seconds:.2f} s = "
        f"{drain.orders_per_second:,.0f} orders/s (batch {drain.batch_size})"
    )
    print(
        f"  in Postgres: {drain.order_rows:,} order rows, {drain.sold_ledger_rows:,} ledger rows; "
        f"left in stream {drain.left_in_stream}, queued marks {drain.left_queued} "
        f"({'complete' if drain.complete else 'INCOMPLETE'})"
    )
    print(f"  (backlog made by purchase.lua in pipelines: {drain.fill_per_second:,.0f} orders/s)")


def print_goals(found: list[Goal]) -> None:
    if not found:
        return
    print(f"\n{'goal':<34} {'measured':>18} {'wanted':>20}  result")
    for goal in found:
        print(
            f"{goal.name:<34} {goal.shown:>18} {goal.wanted:>20}  {'PASS' if goal.met else 'FAIL'}"
        )


def results_document(
    *,
    started_at: datetime,
    machine: dict[str, Any],
    config: dict[str, Any],
    http: HttpPhase | None,
    drain: DrainResult | None,
    found: list[Goal],
) -> dict[str, Any]:
    return {
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": machine,
        "config": config,
        "http": None
        if http is None
        else {
            "targets": {key: runs.as_dict() for key, runs in http.runs.items()},
            "stock_checks": http.checks,
            "wrk_output": http.wrk_output,
        },
        "drain": None if drain is None else drain.as_dict(),
        "goals": [g.as_dict() for g in found],
    }


def write_results(*, started_at: datetime, document: dict[str, Any]) -> Path:
    """bench/results/<UTC timestamp>.json, and the same as latest.json."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    text = json.dumps(document, indent=2) + "\n"
    path = RESULTS_DIR / f"{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(text)
    (RESULTS_DIR / "latest.json").write_text(text)
    return path
