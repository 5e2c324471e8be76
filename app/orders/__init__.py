"""Orders once they reach Postgres: reads, and (later) payment and cancellation."""
