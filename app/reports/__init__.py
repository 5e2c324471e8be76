"""The report after a sale: totals, per-item figures and a per-minute series, from
Postgres exactly (JSON, CSV and a PNG chart), optionally compared with an earlier sale."""
