"""The printed table, the goals (reported, never asserted) and the JSON results."""

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.crowd import CrowdResult
from bench.drain import DrainResult
from bench.fairness import FairnessResult
from bench.load import LoadResult
from bench.purchase import HttpPhase, TargetRuns
from bench.reconciliation import ReconciliationResult
from bench.reminders import ReminderResult

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


def _rate(http: HttpPhase, key: str) -> float | None:
    runs = http.runs.get(key)
    return runs.summary().requests_per_second if runs is not None else None


def _times(name: str, value: float | None, base: float | None, wanted: float) -> list[Goal]:
    if value is None or base is None:
        return []
    ratio = _ratio(value, base)
    # Far below the goal, one decimal would round a tenfold gap and a twentyfold alike.
    shown = f"{ratio:.1f}x" if ratio >= 1 else f"{ratio:.2f}x"
    return [Goal(name, ratio, shown, f">= {wanted:g}x", ratio >= wanted)]


def _cpu_at_most(name: str, http: HttpPhase, key: str, wanted_us: float) -> list[Goal]:
    runs = http.runs.get(key)
    cpu = runs.cpu_us() if runs is not None else None
    if cpu is None:
        return []
    return [Goal(name, cpu, f"{cpu:.0f} µs", f"<= {wanted_us:g} µs", cpu <= wanted_us)]


def _at_most_slower(name: str, feature: TargetRuns, plain: TargetRuns) -> list[Goal]:
    """A feature on the purchase path costs at most 5% (throughput and CPU, same run)."""
    rate = _ratio(feature.summary().requests_per_second, plain.summary().requests_per_second)
    found = [Goal(f"{name}, req/s", rate, f"{rate:.1%}", ">= 95%", rate >= 0.95)]
    feature_cpu, plain_cpu = feature.cpu_us(), plain.cpu_us()
    if feature_cpu and plain_cpu:
        extra = feature_cpu / plain_cpu - 1
        found.append(Goal(f"{name}, CPU/req", extra, f"{extra:+.1%}", "<= +5%", extra <= 0.05))
    return found


def goals(
    http: HttpPhase | None,
    drain: DrainResult | None,
    connections: int,
    crowd: CrowdResult | None = None,
    fairness: FairnessResult | None = None,
    reminders: ReminderResult | None = None,
    reconciled: ReconciliationResult | None = None,
) -> list[Goal]:
    found: list[Goal] = []
    if reconciled is not None:
        per_100k = reconciled.seconds_per_100k
        found.append(
            Goal(
                "reconciliation: 100k settlement rows",
                per_100k,
                f"{per_100k:.1f} s{'' if reconciled.complete else ' (INCOMPLETE)'}",
                "< 5 s",
                per_100k < 5 and reconciled.complete,
            )
        )
    if reminders is not None:
        per_100k = reminders.seconds_per_100k
        found.append(
            Goal(
                "reminders: 100k subscribers delivered",
                per_100k,
                f"{per_100k:.1f} s{'' if reminders.complete else ' (INCOMPLETE)'}",
                "< 60 s",
                per_100k < 60 and reminders.complete,
            )
        )
    queue = fairness.mode("queue") if fairness is not None else None
    if queue is not None:
        # Like for like: the humans there before the start, as the bots were.
        advantage = queue.bot_advantage_over_early
        shown = "no unit to humans" if advantage is None else f"{advantage:.2f}x"
        found.append(
            Goal(
                "bot advantage, waiting room (vs early humans)",
                advantage if advantage is not None else float("inf"),
                shown,
                "<= 1.5x",
                advantage is not None and advantage <= 1.5,
            )
        )
    if http is not None:
        purchase, sold_out = _rate(http, "purchase"), _rate(http, "purchase_sold_out")
        found += _times("purchase req/s vs naive", purchase, _rate(http, "naive"), 10)
        found += _times(
            "purchase req/s vs via framework", purchase, _rate(http, "purchase_framework"), 3
        )
        found += _times(
            "sold-out req/s vs via framework",
            sold_out,
            _rate(http, "purchase_sold_out_framework"),
            5,
        )
        bare = _rate(http, "bare")
        if sold_out is not None and bare is not None:
            share = _ratio(sold_out, bare)
            found.append(
                Goal("sold-out req/s vs bare ASGI", share, f"{share:.0%}", ">= 50%", share >= 0.5)
            )
        found += _times(
            "cold purchase req/s vs naive redis",
            _rate(http, "purchase_cold"),
            _rate(http, "naive_redis"),
            3,
        )
        # Issue 20's queue cost: a waiting room must take its crowd's joins and polls at
        # least as fast as the sale behind it takes purchases, or it is the bottleneck.
        found += _times("queue joins req/s vs purchase", _rate(http, "queue_join"), purchase, 1)
        found += _times("queue polls req/s vs purchase", _rate(http, "queue_poll"), purchase, 1)
        # Issue 21's lottery: a draw is a purchase's work (one script call, no Postgres)
        # behind a thin route of its own, so it keeps up with the purchase.
        found += _times("lottery draws req/s vs purchase", _rate(http, "lottery_draw"), purchase, 1)
        found += _cpu_at_most("API CPU per accepted purchase", http, "purchase", 120)
        found += _cpu_at_most("API CPU per cold-token purchase", http, "purchase_cold", 100)
        found += _cpu_at_most("API CPU per sold-out refusal", http, "purchase_sold_out", 50)
        if "purchase" in http.runs:
            p99 = http.runs["purchase"].summary().p99_ms
            found.append(
                Goal(
                    f"purchase p99 at {connections} connections",
                    p99,
                    f"{p99:.1f} ms",
                    "<= 20 ms",
                    p99 <= 20,
                )
            )
    if http is not None and {"purchase", "purchase_campaign"} <= http.runs.keys():
        found += _at_most_slower(
            "campaign + X-Channel vs plain",
            http.runs["purchase_campaign"],
            http.runs["purchase"],
        )
    if http is not None and {"purchase", "purchase_member"} <= http.runs.keys():
        # Issue 21: a member's purchase at the member price, taking from the reserve.
        found += _at_most_slower(
            "member purchase vs plain", http.runs["purchase_member"], http.runs["purchase"]
        )
    if http is not None and {"purchase", "purchase_pass"} <= http.runs.keys():
        # The gate's cost: one HMAC in the API process and one HGET field in purchase.lua.
        with_passes = _ratio(
            http.runs["purchase_pass"].summary().requests_per_second,
            http.runs["purchase"].summary().requests_per_second,
        )
        found.append(
            Goal(
                "purchase req/s, with passes (queue) vs open",
                with_passes,
                f"{with_passes:.1%}",
                ">= 90%",
                with_passes >= 0.9,
            )
        )
        pass_cpu, open_cpu = http.runs["purchase_pass"].cpu_us(), http.runs["purchase"].cpu_us()
        if pass_cpu and open_cpu:
            extra = pass_cpu / open_cpu - 1
            found.append(
                Goal(
                    "purchase CPU/req, with passes (queue) vs open",
                    extra,
                    f"{extra:+.1%}",
                    "<= +10%",
                    extra <= 0.1,
                )
            )
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
                ">= 50,000 orders/s",
                rate >= 50_000 and drain.complete,
            )
        )
    if crowd is not None:
        late = crowd.last_order_stored_after_seconds
        found.append(
            Goal(
                "crowd: last order stored after last sale",
                late if late is not None else float("inf"),
                f"{late:.2f} s" if late is not None else "never",
                "<= 5 s",
                late is not None and late <= 5 and crowd.consistent,
            )
        )
    return found


def _row(label: str, r: LoadResult, cpu_us: float | None, naive: float, bare: float) -> str:
    rate = r.requests_per_second
    cpu = f"{cpu_us:>8.0f}" if cpu_us is not None else f"{'-':>8}"
    # A baseline left out of the run (--only) shows as "-", not as nan.
    vs_naive = f"{_ratio(rate, naive):>8.2f}x" if not math.isnan(naive) else f"{'-':>9}"
    vs_bare = f"{_ratio(rate, bare):>8.0%}" if not math.isnan(bare) else f"{'-':>8}"
    return (
        f"{label:<27} {rate:>9,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
        f"{vs_naive} {vs_bare} {r.non_2xx + r.socket_errors:>9,} {cpu}"
    )


def print_http(
    http: HttpPhase, *, connections: int, seconds: float, rounds: int, api_workers: int = 1
) -> None:
    summaries = {key: runs.summary() for key, runs in http.runs.items()}
    nan = float("nan")
    naive = summaries["naive"].requests_per_second if "naive" in summaries else nan
    bare = summaries["bare"].requests_per_second if "bare" in summaries else nan
    print(
        f"\nHTTP: {api_workers} API process(es), {connections} connections, {seconds:g} s per "
        f"run, median of {rounds} round(s)"
    )
    print(
        f"{'target':<27} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs naive':>9} "
        f"{'vs bare':>8} {'non-2xx*':>9} {'CPU µs**':>8}"
    )
    for key, runs in http.runs.items():
        print(_row(runs.target.label, summaries[key], runs.cpu_us(), naive, bare))
    print("*  non-2xx answers plus socket errors; the sold-out rows are all 409 by design.")
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


def print_reminders(result: ReminderResult) -> None:
    print(
        f"\nReminders: {result.subscribers:,} subscribers delivered in "
        f"{result.delivery_seconds:.2f} s = {result.per_second:,.0f} subscribers/s (batches "
        f"of {result.batch_size:,}, {result.concurrency} at once)"
    )
    print(
        f"  vs the same batches posted with no outbox: {result.baseline_per_second:,.0f}/s "
        f"({result.per_second / result.baseline_per_second:.0%} of it)"
    )
    print(
        f"  receiver: {result.received_users:,} distinct users, {result.repeated_users} in two "
        f"batches, {result.unsigned_posts} unsigned posts; outbox: {result.sent:,} sent "
        f"({'complete' if result.complete else 'INCOMPLETE'})"
    )
    print(f"  (subscriptions written in one statement: {result.fill_seconds:.2f} s)")


def print_reconciliation(result: ReconciliationResult) -> None:
    print(
        f"\nReconciliation: {result.rows:,} settlement rows ({result.file_bytes / 1e6:.1f} MB) "
        f"against {result.rows:,} paid orders in {result.reconcile_seconds:.2f} s = "
        f"{result.per_second:,.0f} rows/s"
    )
    print(
        f"  vs parsing the file alone: {result.rows / result.parse_seconds:,.0f} rows/s "
        f"({result.parse_seconds:.2f} s; reconciling takes "
        f"{result.reconcile_seconds / result.parse_seconds:.1f}x as long)"
    )
    print(
        f"  matched {result.matched:,}, {result.mismatches} mismatches "
        f"({'complete' if result.complete else 'INCOMPLETE'}); orders written in one "
        f"statement: {result.fill_seconds:.2f} s"
    )


def print_crowd(crowd: CrowdResult) -> None:
    def seconds(value: float | None) -> str:
        return f"{value:.2f} s" if value is not None else "never"

    rate = crowd.refusals_per_second_after
    print(
        f"\nCrowd: {crowd.buyers:,} distinct buyers (cold tokens), one purchase each, on "
        f"{crowd.stock:,} units (limit 1): {crowd.requests:,} requests in "
        f"{crowd.seconds:.1f} s, p50 {crowd.p50_ms:.2f} ms, p99 {crowd.p99_ms:.2f} ms"
    )
    print(
        f"  sold out after {seconds(crowd.sold_out_after_seconds)}; then "
        f"{f'{rate:,.0f}' if rate is not None else '-'} refusals/s; last order in Postgres "
        f"{seconds(crowd.last_order_stored_after_seconds)} after the last sale"
    )
    print(
        f"  books: {crowd.answered_2xx:,} accepted (2xx), {crowd.orders_stored:,} orders "
        f"stored, {crowd.sold_ledger_rows:,} sold ledger rows, {crowd.buyers_above_limit} "
        f"buyers above the limit, {crowd.left_in_stream} left in the stream, "
        f"{crowd.socket_errors} socket errors ({'ok' if crowd.consistent else 'MISMATCH'})"
    )


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
    crowd: CrowdResult | None = None,
    fairness: FairnessResult | None = None,
    reminders: ReminderResult | None = None,
    reconciled: ReconciliationResult | None = None,
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
        "crowd": None if crowd is None else crowd.as_dict(),
        "fairness": None if fairness is None else fairness.as_dict(),
        "reminders": None if reminders is None else reminders.as_dict(),
        "reconciliation": None if reconciled is None else reconciled.as_dict(),
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
