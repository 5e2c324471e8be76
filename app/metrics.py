"""Prometheus metrics of this process; /metrics adds Redis-wide gauges at scrape time."""

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# prometheus_client's own switch: counters live in files under this directory, shared by
# the processes of one `seckill serve --workers N`.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

registry = CollectorRegistry(auto_describe=True)

purchases = Counter(
    "seckill_purchases_total",
    "Purchase attempts by outcome (accepted, replayed, sold_out, limit_exceeded, "
    "not_admitted, ...).",
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
claims_written = Counter(
    "seckill_coupon_claims_written_total",
    "Claimed coupons the order writer stored in Postgres (this process).",
    registry=registry,
)
places_written = Counter(
    "seckill_queue_places_written_total",
    "Waiting-room places the order writer stored in Postgres (this process).",
    registry=registry,
)
orders_dead_lettered = Counter(
    "seckill_orders_dead_lettered_total",
    "Order entries moved to the dead-letter stream after repeated failures.",
    registry=registry,
)
orders_key_reused = Counter(
    "seckill_orders_key_reused_total",
    "Accepted orders the writer refused as a second order under one Idempotency-Key "
    "(its Redis record was lost); their units went back to the sale.",
    registry=registry,
)
order_transitions = Counter(
    "seckill_order_transitions_total",
    "Order status changes won (paid, cancelled, refunded) by cause.",
    ["to_status", "cause"],
    registry=registry,
)
charges_given_back = Counter(
    "seckill_charges_given_back_total",
    "Charges refunded because they paid no order (a late notification, a lost race), by "
    "the order's status then.",
    ["order_status"],
    registry=registry,
)
stock_returns = Counter(
    "seckill_stock_returns_total",
    "Cancelled or refunded orders whose units came back: on_sale (released) or on_hand.",
    ["to"],
    registry=registry,
)
order_returns = Counter(
    "seckill_returns_total",
    "Returns requested, approved (refunded) and rejected, by reason.",
    ["outcome", "reason"],
    registry=registry,
)
coupon_claims = Counter(
    "seckill_coupon_claims_total",
    "Coupon claim attempts by outcome (claimed, replayed, exhausted, limit_exceeded, ...).",
    ["outcome"],
    registry=registry,
)
coupon_redemptions = Counter(
    "seckill_coupon_redemptions_total",
    "Coupons at checkout by outcome: used, given_back (cancel/timeout/refund), or the "
    "reason it was refused (below_threshold, out_of_scope, expired, already_used, ...).",
    ["outcome"],
    registry=registry,
)
coupons_granted = Counter(
    "seckill_coupons_granted_total",
    "Coupons handed out by bulk grant jobs (this process).",
    registry=registry,
)
reminders_sent = Counter(
    "seckill_reminders_sent_total",
    "Subscribers whose reminder batch the notification webhook acknowledged (this process).",
    registry=registry,
)
reminders_failed = Counter(
    "seckill_reminders_failed_total",
    "Subscribers whose reminder batch was given up after every attempt failed.",
    registry=registry,
)
reminder_posts = Counter(
    "seckill_reminder_posts_total",
    "Reminder batches posted to the notification webhook, by outcome (ok, refused, error).",
    ["outcome"],
    registry=registry,
)
backend_state_changes = Counter(
    "seckill_backend_state_changes_total",
    "A backing service (Redis, Postgres) seen going down or coming back by this process.",
    ["backend", "to"],
    registry=registry,
)
redis_breaker_open = Gauge(
    "seckill_redis_breaker_open",
    "1 while this process's Redis circuit breaker is open (purchases answer 503).",
    registry=registry,
    multiprocess_mode="max",
)
hot_store_faults = Counter(
    "seckill_hot_store_faults_total",
    "Items found lost (unloaded) or rolled back in Redis and rebuilt from Postgres.",
    ["kind"],
    registry=registry,
)


def exposition() -> bytes:
    """This process's metrics in the text format; with PROMETHEUS_MULTIPROC_DIR set (as
    `seckill serve --workers N` does), every process's, summed: a scrape answered by any
    worker counts the purchases of all of them, so counters never jump between scrapes."""
    if os.environ.get(MULTIPROCESS_ENV):
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined)
        return bytes(generate_latest(combined))
    return bytes(generate_latest(registry))
