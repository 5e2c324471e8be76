"""The naive baseline's storage: stock taken with a Postgres row lock, one transaction
per purchase. Deliberately the design the real service avoids; every SQL statement of
the baseline lives here. It runs on a plain asyncpg pool (no ORM), so the baseline is
not slowed by anything but its design."""

from decimal import Decimal

import asyncpg

SCHEMA = "bench_naive"

_CREATE = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.items (
    id bigint PRIMARY KEY,
    stock bigint NOT NULL CHECK (stock >= 0),
    unit_price numeric(12, 2) NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.orders (
    id text PRIMARY KEY,
    user_id text NOT NULL,
    item_id bigint NOT NULL REFERENCES {SCHEMA}.items (id),
    quantity integer NOT NULL,
    unit_price numeric(12, 2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
"""

_TAKE_STOCK = f"""
UPDATE {SCHEMA}.items SET stock = stock - $2
WHERE id = $1 AND stock >= $2
RETURNING unit_price
"""

_INSERT_ORDER = f"""
INSERT INTO {SCHEMA}.orders (id, user_id, item_id, quantity, unit_price)
VALUES ($1, $2, $3, $4, $5)
"""


async def create_tables(connection: asyncpg.Connection, *, item_id: int, stock: int) -> None:
    await connection.execute(_CREATE)
    await connection.execute(
        f"INSERT INTO {SCHEMA}.items (id, stock, unit_price) VALUES ($1, $2, $3)",
        item_id,
        stock,
        Decimal("1999.00"),
    )


async def stock_left(connection: asyncpg.Connection, item_id: int) -> int:
    value = await connection.fetchval(f"SELECT stock FROM {SCHEMA}.items WHERE id = $1", item_id)
    return int(value)


class NaiveStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def purchase(self, *, order_id: str, item_id: int, user_id: str, quantity: int) -> bool:
        """Take the stock and write the order in one transaction; False if sold out."""
        async with self.pool.acquire() as connection, connection.transaction():
            unit_price = await connection.fetchval(_TAKE_STOCK, item_id, quantity)
            if unit_price is None:
                return False
            await connection.execute(
                _INSERT_ORDER, order_id, user_id, item_id, quantity, unit_price
            )
            return True
