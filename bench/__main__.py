"""`python -m bench` (`make bench`): purchase throughput and latency against in-run
baselines, then the order writer's drain rate; a table on screen and JSON in
bench/results/."""

import argparse
import asyncio
import logging
import os
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from bench.crowd import CrowdResult, measure_crowd
from bench.drain import DrainResult, measure_drain
from bench.environment import bench_environment, machine_info
from bench.fairness import FairnessResult, measure_fairness, print_fairness
from bench.load import require_wrk
from bench.purchase import HttpOptions, HttpPhase, measure_http
from bench.reconciliation import ReconciliationResult, measure_reconciliation
from bench.reminders import ReminderResult, measure_reminders
from bench.report import (
    goals,
    print_crowd,
    print_drain,
    print_goals,
    print_http,
    print_reconciliation,
    print_reminders,
    results_document,
    write_results,
)

# --quick: short runs for development (flags given explicitly still win).
QUICK = {
    "seconds": 3.0,
    "warmup": 1.0,
    "rounds": 1,
    "drain_orders": 20_000,
    "cold_users": 100_000,
    "crowd_buyers": 50_000,
    "crowd_stock": 2_000,
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Servers: SECKILL_BENCH_DATABASE_URL (a database to administer from; default "
        "postgresql://postgres@127.0.0.1:5432/postgres) and SECKILL_BENCH_REDIS_URL (default "
        "redis://127.0.0.1:6379/0). Each run creates and drops its own seckill_bench_* "
        "database and Redis key prefix.",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured run per target")
    parser.add_argument("--warmup", type=float, default=3.0, help="warm-up before each run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of all targets, interleaved (median)"
    )
    parser.add_argument("--users", type=int, default=20_000, help="distinct users (tokens)")
    parser.add_argument(
        "--cold-users",
        type=int,
        default=300_000,
        help="distinct users of the cold-token targets (each request a token never seen)",
    )
    parser.add_argument("--drain-orders", type=int, default=100_000, help="backlog to drain")
    parser.add_argument(
        "--with-writer",
        action="store_true",
        help="run the order writer beside the API during the HTTP runs",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"short runs for development: {QUICK} unless given explicitly",
    )
    parser.add_argument(
        "--api-workers",
        type=int,
        default=1,
        help="API processes (uvicorn --workers); the issue's figures are for one",
    )
    parser.add_argument(
        "--only",
        help="comma-separated targets to run: bare, noop, naive, naive_redis, purchase, "
        "purchase_campaign, purchase_member, purchase_pass, purchase_framework, "
        "purchase_unlimited, purchase_cold, "
        "purchase_sold_out, purchase_sold_out_framework, purchase_sold_out_cold, queue_join, "
        "queue_poll, lottery_draw (e.g. `--only purchase,purchase_unlimited` for the rate "
        "limiter's cost)",
    )
    parser.add_argument(
        "--crowd-buyers",
        type=int,
        default=1_000_000,
        help="the crowd phase's distinct buyers, one purchase each (0: no crowd phase)",
    )
    parser.add_argument("--crowd-stock", type=int, default=10_000, help="the crowd's units")
    parser.add_argument(
        "--reminder-subscribers",
        type=int,
        default=100_000,
        help="the reminders phase's subscribers, delivered to a local receiver (0: none)",
    )
    parser.add_argument(
        "--reconciliation-rows",
        type=int,
        default=100_000,
        help="the reconciliation phase's settlement rows, one per paid order (0: none)",
    )
    parser.add_argument("--skip-http", action="store_true", help="no HTTP phase")
    parser.add_argument("--skip-drain", action="store_true", help="no drain phase")
    parser.add_argument(
        "--skip-fairness",
        action="store_true",
        help="no bot-advantage phase (humans against bots, open mode and the waiting room)",
    )
    if parser.parse_known_args()[0].quick:
        parser.set_defaults(**QUICK)
    return parser.parse_args()


async def run(args: argparse.Namespace) -> None:
    started_at = datetime.now(UTC)
    http: HttpPhase | None = None
    drain: DrainResult | None = None
    crowd: CrowdResult | None = None
    fairness: FairnessResult | None = None
    reminders: ReminderResult | None = None
    reconciled: ReconciliationResult | None = None
    options = HttpOptions(
        connections=args.connections,
        threads=args.threads,
        seconds=args.seconds,
        warmup_seconds=args.warmup,
        rounds=args.rounds,
        users=args.users,
        cold_users=args.cold_users,
        with_writer=args.with_writer,
        api_workers=args.api_workers,
        only=tuple(args.only.split(",")) if args.only else None,
    )
    async with bench_environment() as env:
        machine = await machine_info(env)
        print(
            f"bench on {machine['nproc']} CPUs, Python {machine['python']}, "
            f"Redis {machine['redis']}, Postgres {machine['postgres']}, "
            f"load average {machine['load_average'][0]:.2f}",
            flush=True,
        )
        # Each phase's table is printed as soon as it is measured: a later phase that
        # fails takes nothing measured with it.
        if not args.skip_http:
            with tempfile.TemporaryDirectory(prefix="seckill-bench-") as workdir:
                http = await measure_http(env, options, Path(workdir))
            print_http(
                http,
                connections=args.connections,
                seconds=args.seconds,
                rounds=args.rounds,
                api_workers=args.api_workers,
            )
        if not args.skip_drain:
            print(f"\ndraining {args.drain_orders:,} orders...", flush=True)
            drain = await measure_drain(env, orders=args.drain_orders)
            print_drain(drain)
        if args.reminder_subscribers:
            print(f"\ndelivering {args.reminder_subscribers:,} reminders...", flush=True)
            reminders = await measure_reminders(env, subscribers=args.reminder_subscribers)
            print_reminders(reminders)
        if args.reconciliation_rows:
            print(f"\nreconciling {args.reconciliation_rows:,} settlement rows...", flush=True)
            reconciled = await measure_reconciliation(env, rows=args.reconciliation_rows)
            print_reconciliation(reconciled)
        if args.crowd_buyers:
            print(flush=True)
            with tempfile.TemporaryDirectory(prefix="seckill-crowd-") as workdir:
                crowd = await measure_crowd(
                    env,
                    Path(workdir),
                    buyers=args.crowd_buyers,
                    stock=args.crowd_stock,
                    connections=args.connections,
                )
            print_crowd(crowd)
        if not args.skip_fairness:
            print(flush=True)
            with tempfile.TemporaryDirectory(prefix="seckill-fairness-") as workdir:
                fairness = await measure_fairness(env, Path(workdir))
            print_fairness(fairness)
        # Other work on the machine skews every figure: the load before and after says how much.
        machine["load_average_after"] = list(os.getloadavg())

    found = goals(http, drain, args.connections, crowd, fairness, reminders, reconciled)
    print_goals(found)

    document = results_document(
        started_at=started_at,
        machine=machine,
        config={
            **asdict(options),
            "drain_orders": args.drain_orders,
            "crowd_buyers": args.crowd_buyers,
            "crowd_stock": args.crowd_stock,
            "reminder_subscribers": args.reminder_subscribers,
            "reconciliation_rows": args.reconciliation_rows,
            "quick": args.quick,
        },
        http=http,
        drain=drain,
        crowd=crowd,
        fairness=fairness,
        reminders=reminders,
        reconciled=reconciled,
        found=found,
    )
    path = write_results(started_at=started_at, document=document)
    print(f"\nresults: {path} (and latest.json)")


def main() -> None:
    args = parse_args()
    if not args.skip_http:
        require_wrk()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        # The run's database, Redis keys and processes are gone by now (finally blocks).
        raise SystemExit("interrupted; the bench's database and Redis keys were removed") from None


if __name__ == "__main__":
    main()
