"""`python -m bench.stats_cost`: what the live stats cost the hot path, measured in one run.

The live stats are a few O(1) commands inside purchase.lua, each line marked
`-- live stats`. This runs the service's own purchase function (app.seckill.service:
the whole hot path but HTTP, which would only dilute the difference) with the script as
shipped and with those lines removed, in interleaved rounds of concurrent buyers against
one live sale, and prints purchases/s of each and their ratio (median of the rounds).
"""

import argparse
import asyncio
import statistics
import time
from dataclasses import replace
from pathlib import Path

from redis.commands.core import AsyncScript

from app.auth import User
from app.container import Container
from app.processes.services import build_services
from app.seckill import service as seckill
from app.store.scripts import lua_dir
from bench.environment import bench_environment
from bench.sales import open_sale

STATS_MARK = " -- live stats"


def without_stats(source: str) -> str:
    """purchase.lua with every marked line of the live stats removed."""
    kept = [line for line in source.splitlines() if not line.rstrip().endswith(STATS_MARK)]
    return "\n".join(kept) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stats_cost",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--purchases", type=int, default=20_000, help="per variant per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--concurrency", type=int, default=64, help="buyers at once")
    return parser.parse_args()


async def _round(
    *, services: Container, item_id: int, first_user: int, purchases: int, concurrency: int
) -> float:
    """Purchases/s of `purchases` accepted purchases by distinct users."""
    queue = iter(range(first_user, first_user + purchases))

    async def buyer() -> None:
        for n in queue:
            await seckill.purchase(
                services=services,
                item_id=item_id,
                user=User(id=f"b{n}", member=False),
                quantity=1,
                idempotency_key=None,
            )

    started = time.perf_counter()
    await asyncio.gather(*(buyer() for _ in range(concurrency)))
    return purchases / (time.perf_counter() - started)


async def main() -> None:
    args = parse_args()
    shipped = (Path(lua_dir()) / "purchase.lua").read_text()
    stripped = without_stats(shipped)
    removed = len(shipped.splitlines()) - len(stripped.splitlines())
    async with bench_environment() as env:
        settings = env.settings(rate_limit_per_user="1000000/second", rate_limit_per_address="off")
        async with build_services(settings) as services:
            stock = 2 * args.rounds * args.purchases + args.concurrency
            item_id = await open_sale(services, sku="BENCH-STATS", stock=stock, per_user_limit=1)
            variants: dict[str, AsyncScript] = {
                "stats on (as shipped)": services.scripts.purchase,
                "stats off": services.redis.register_script(stripped),
            }
            rates: dict[str, list[float]] = {name: [] for name in variants}
            users = 0
            for round_no in range(args.rounds):
                order = list(variants) if round_no % 2 == 0 else list(reversed(variants))
                for name in order:
                    services.scripts = replace(services.scripts, purchase=variants[name])
                    rate = await _round(
                        services=services,
                        item_id=item_id,
                        first_user=users,
                        purchases=args.purchases,
                        concurrency=args.concurrency,
                    )
                    users += args.purchases
                    rates[name].append(rate)
    on, off = (statistics.median(r) for r in rates.values())
    print(f"live stats: {removed} marked lines of purchase.lua")
    print(f"{'variant':<24}{'purchases/s (median)':>22}   rounds")
    for name, runs in rates.items():
        print(
            f"{name:<24}{statistics.median(runs):>22,.0f}   {', '.join(f'{r:,.0f}' for r in runs)}"
        )
    print(f"stats on / stats off: {on / off:.3f} ({(on / off - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    asyncio.run(main())
