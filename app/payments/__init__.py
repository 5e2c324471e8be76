"""Payments: the gateway interface (with a simulated gateway), paying, the gateway's
signed notifications, refunds."""
