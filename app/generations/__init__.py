"""The generations of the counters Redis decides on, as Postgres remembers them."""
