"""The worker's own HTTP port: GET /metrics (this process's counters: orders written,
dead-lettered, transitions, grants) and GET /healthz. A few lines of asyncio, so the
worker needs no web framework and Prometheus scrapes each worker on its own."""

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from app.metrics import exposition

TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
READ_TIMEOUT_SECONDS = 5.0


def _response(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _answer(request_line: bytes) -> bytes:
    parts = request_line.decode("latin-1").split()
    method, path = (parts[0], parts[1].split("?")[0]) if len(parts) >= 2 else ("", "")
    if method != "GET":
        return _response("405 Method Not Allowed", "text/plain", b"GET only\n")
    if path == "/metrics":
        return _response("200 OK", TEXT_FORMAT, exposition())
    if path == "/healthz":
        return _response("200 OK", "application/json", json.dumps({"status": "ok"}).encode())
    return _response("404 Not Found", "text/plain", b"/metrics or /healthz\n")


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        async with asyncio.timeout(READ_TIMEOUT_SECONDS):
            request_line = await reader.readline()
            while (await reader.readline()).strip():  # headers: read and ignored
                pass
        writer.write(_answer(request_line))
        await writer.drain()
    except (TimeoutError, ConnectionError, UnicodeDecodeError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


@contextlib.asynccontextmanager
async def serve_worker_http(host: str, port: int) -> AsyncIterator[asyncio.Server]:
    server = await asyncio.start_server(_handle, host, port)
    try:
        yield server
    finally:
        server.close()
        await server.wait_closed()
