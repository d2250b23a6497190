"""Loopback HTTP plumbing: a threading server per role and a tiny request/response model."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

#: the longest a slow route may wait, whatever the caller asks (seconds)
MAX_DELAY = 30.0


@dataclass
class Request:
    role: str
    base: str  # this server's base URL, e.g. http://127.0.0.2:41234
    method: str
    path: str
    query: dict[str, str]
    raw_query: str
    headers: dict[str, str]  # lower-cased names

    def arg(self, name: str, default: str | None = None) -> str | None:
        return self.query.get(name, default)

    def int_arg(self, name: str, default: int) -> int:
        try:
            return int(self.query.get(name, default))
        except (TypeError, ValueError):
            return default


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0  # seconds before the status line
    drip: float = 0.0  # seconds over which the body is sent, in small pieces

    @classmethod
    def json(cls, obj, status: int = 200, **kw) -> "Response":
        return cls(status, json.dumps(obj).encode(), "application/json; charset=utf-8", **kw)

    @classmethod
    def html(cls, text: str, status: int = 200, **kw) -> "Response":
        return cls(status, text.encode(), "text/html; charset=utf-8", **kw)

    @classmethod
    def text(cls, text: str, status: int = 200, **kw) -> "Response":
        return cls(status, text.encode(), "text/plain; charset=utf-8", **kw)

    @classmethod
    def redirect(cls, location: str, status: int = 302) -> "Response":
        return cls(status, b"", "text/plain", [("Location", location)])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, addr, role: str, app, stop: threading.Event):
        self.role = role
        self.app = app  # callable(Request) -> Response; app.log(...) records requests
        self.stop_event = stop
        super().__init__(addr, _Handler)
        host, port = self.server_address[:2]
        self.base = f"http://{host}:{port}"

    def handle_error(self, request, client_address):
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that hung up (e.g. after its own timeout) is not an emulator error
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length
    server_version = "fid-emulator/1.0"
    sys_version = ""
    timeout = 30

    def log_message(self, format, *args):  # noqa: A002 - silence stderr logging
        pass

    def do_GET(self):
        self._serve(head=False)

    def do_HEAD(self):
        self._serve(head=True)

    def _serve(self, head: bool):
        srv: _Server = self.server  # type: ignore[assignment]
        parts = urlsplit(self.path)
        req = Request(
            role=srv.role, base=srv.base, method=self.command, path=parts.path or "/",
            query=dict(parse_qsl(parts.query, keep_blank_values=True)), raw_query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        try:
            resp = srv.app(req)
        except Exception as exc:  # noqa: BLE001 - a bug in an emulator answers 500, never hangs
            resp = Response.text(f"emulator error: {type(exc).__name__}: {exc}\n", 500)
        stop = srv.stop_event
        if resp.delay > 0 and stop.wait(min(resp.delay, MAX_DELAY)):
            self.close_connection = True
            return
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(resp.body)))
            for k, v in resp.headers:
                self.send_header(k, v)
            self.end_headers()
            if not head and resp.body:
                if resp.drip > 0:
                    pieces = 20
                    step = max(1, len(resp.body) // pieces)
                    pause = min(resp.drip, MAX_DELAY) / pieces
                    for i in range(0, len(resp.body), step):
                        self.wfile.write(resp.body[i:i + step])
                        self.wfile.flush()
                        if stop.wait(pause):
                            break
                else:
                    self.wfile.write(resp.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            log = getattr(srv.app, "log", None)
            if log:
                log(req, resp.status)


def serve(address: str, port: int, role: str, app, stop: threading.Event) -> tuple[_Server, threading.Thread]:
    """Bind ``address:port`` (0: ephemeral) and serve ``app`` in a daemon thread."""
    srv = _Server((address, port), role, app, stop)
    t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                         name=f"emulator-{role}", daemon=True)
    t.start()
    return srv, t


def now() -> float:
    return time.monotonic()
