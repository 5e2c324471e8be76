"""uvicorn's HTTP protocol with a limit on the request head (request line + headers).

httptools has no such limit of its own: an 8 MB header is buffered whole. This protocol
counts the bytes that arrive while a request's head is still open and answers
`431 Request Header Fields Too Large` (and closes) once they pass the limit, so at most the
limit plus one network read is ever held. The limit is uvicorn's own
`h11_max_incomplete_event_size` setting, which the h11 protocol applies the same way.
"""

from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Where uvicorn finds it when the app runs under `--workers` (an import string).
PROTOCOL = "app.server:LimitedHttpToolsProtocol"
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
