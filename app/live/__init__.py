"""Watching a live sale: stats (JSON and Server-Sent Events), the public live board and
the operators' dashboard page."""
