"""The API's server: uvicorn, its options (`serve`), and its HTTP protocol with a limit on
the request head (request line + headers).

httptools has no such limit of its own: an 8 MB header is buffered whole. This protocol
counts the bytes that arrive while a request's head is still open and answers
`431 Request Header Fields Too Large` (and closes) once they pass the limit, so at most the
limit plus one network read is ever held. The limit is uvicorn's own
`h11_max_incomplete_event_size` setting, which the h11 protocol applies the same way.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.config import Settings
from app.metrics import MULTIPROCESS_ENV

# Where uvicorn finds it when the app runs under `--workers` (an import string).
PROTOCOL = "app.processes.server:LimitedHttpToolsProtocol"
DEFAULT_LIMIT = 16 * 1024


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_limit: int = self.config.h11_max_incomplete_event_size or DEFAULT_LIMIT
        self._head_open = True
        self._head_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._head_open:
            self._head_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: bytes past a head that completed are body, not head.
        if self._head_open and self._head_bytes > self._head_limit:
            self._refuse_head()

    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head_open = True  # what comes next on this connection is the next head
        self._head_bytes = 0

    def _refuse_head(self) -> None:
        self._head_open = False
        message = b"Request header fields too large."
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: text/plain; charset=utf-8\r\n"
            b"content-length: " + str(len(message)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + message
        )
        self.transport.close()


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's settings, the same for one process or many."""
    return {
        "access_log": settings.access_log,
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "log_level": settings.log_level.lower(),
        # Request heads over this are refused (431) before they are buffered whole.
        "http": PROTOCOL,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        # No `server: uvicorn` banner.
        "server_header": False,
        # The client address for the rate limits comes from SECKILL_TRUSTED_PROXIES
        # (app/ratelimit/addresses.py); uvicorn's own rewrite would believe 127.0.0.1.
        "proxy_headers": False,
    }


@contextlib.contextmanager
def _shared_metrics(workers: int) -> Iterator[None]:
    """Several API processes keep their counters in one fresh directory (prometheus_client's
    multiprocess mode), so /metrics sums them whichever process answers the scrape."""
    if workers <= 1 or os.environ.get(MULTIPROCESS_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="seckill-metrics-") as directory:
        os.environ[MULTIPROCESS_ENV] = directory
        try:
            yield
        finally:
            os.environ.pop(MULTIPROCESS_ENV, None)


def serve(settings: Settings, host: str, port: int, workers: int) -> None:
    """Run the API until it is stopped: one process, or `workers` under uvicorn."""
    with _shared_metrics(workers):
        if workers > 1:
            uvicorn.run(
                "app.processes.api:create_app",
                factory=True,
                host=host,
                port=port,
                workers=workers,
                **server_options(settings),
            )
            return
        from app.processes.api import create_app

        uvicorn.run(create_app(settings), host=host, port=port, **server_options(settings))
