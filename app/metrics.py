"""Prometheus metrics of this process; /metrics adds Redis-wide gauges at scrape time."""

from prometheus_client import CollectorRegistry, Counter, Histogram

registry = CollectorRegistry(auto_describe=True)

purchases = Counter(
    "seckill_purchases_total",
    "Purchase attempts by outcome (accepted, replayed, sold_out, limit_exceeded, ...).",
    ["outcome"],
    registry=registry,
)
purchase_seconds = Histogram(
    "seckill_purchase_seconds",
    "Time to decide a purchase attempt, in this process.",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=registry,
)
orders_written = Counter(
    "seckill_orders_written_total",
    "Orders the order writer stored in Postgres (this process).",
    registry=registry,
)
orders_dead_lettered = Counter(
    "seckill_orders_dead_lettered_total",
    "Order entries moved to the dead-letter stream after repeated failures.",
    registry=registry,
)
order_transitions = Counter(
    "seckill_order_transitions_total",
    "Order status changes won (paid, cancelled, refunded) by cause.",
    ["to_status", "cause"],
    registry=registry,
)
stock_returns = Counter(
    "seckill_stock_returns_total",
    "Cancelled or refunded orders whose units came back: on_sale (released) or on_hand.",
    ["to"],
    registry=registry,
)
