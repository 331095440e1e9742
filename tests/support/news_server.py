"""A real HTTP server on 127.0.0.1 for the fetching tests and benchmarks: news pages, PDFs, feeds and bad servers.

Routes are a dict from path to a handler; the server records every request (path and headers) and,
for streamed bodies, how many bytes it managed to send before the client hung up.
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from index.reading.fetch import FetchConfig
from tests.support.paths import SOURCES as DATA

Handler = Callable[["_RequestHandler"], None]


#: Loopback allowed: the only way to reach the test server.
LOCAL = FetchConfig(allow_private=True, connect_timeout=2, read_timeout=2, total_timeout=10)
#: The address rule on, with only the test server's own address exempt: for testing the rule hop by hop.
STRICT = FetchConfig(allow_networks=("127.0.0.1/32",), connect_timeout=2, read_timeout=2, total_timeout=10)


@dataclass
class Seen:
    """What the server saw: requests (path, headers), bytes sent by streaming routes, and if the client hung up."""

    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    streamed: dict[str, int] = field(default_factory=dict)
    hung_up: dict[str, bool] = field(default_factory=dict)
    sni: list[str | None] = field(default_factory=list)

    def paths(self) -> list[str]:
        """Return the paths requested, in order."""
        return [path for path, _ in self.requests]


class _RequestHandler(http.server.BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self.server.seen.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        handler = self.server.routes.get(self.path.split("?", 1)[0])
        if handler is None:
            self.reply(404, b"<html><body><h1>Not found</h1></body></html>", "text/html")
            return
        handler(self)

    def reply(self, status: int, body: bytes, content_type: str | None, headers: dict[str, str] | None = None) -> None:
        """Send a whole response."""
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Handler]
    seen: Seen

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet when a client hangs up or fails a TLS handshake: the tests provoke both on purpose."""


class NewsServer:
    """A threaded HTTP (or HTTPS) server on 127.0.0.1 with routes set by the caller; use as a context manager."""

    def __init__(self, routes: dict[str, Handler] | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.httpd = _Server(("127.0.0.1", 0), _RequestHandler)
        self.httpd.routes = dict(routes or {})
        self.httpd.seen = Seen()
        self.tls = tls
        if tls is not None:
            tls.sni_callback = lambda sock, name, ctx: self.httpd.seen.sni.append(name)
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def routes(self) -> dict[str, Handler]:
        """The routes, path to handler; change them while the server runs."""
        return self.httpd.routes

    @property
    def seen(self) -> Seen:
        """What the server saw."""
        return self.httpd.seen

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        """Return the URL of ``path`` on this server, under ``host`` (any name a resolver maps here)."""
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    def __enter__(self) -> NewsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def page(body: bytes, content_type: str | None = "text/html; charset=utf-8", **headers: str) -> Handler:
    """Serve ``body`` with a content type, honouring If-None-Match when an ETag header is given."""

    def handle(request: _RequestHandler) -> None:
        etag = headers.get("ETag")
        if etag and request.headers.get("If-None-Match") == etag:
            request.send_response(304)
            request.send_header("ETag", etag)
            request.send_header("Content-Length", "0")
            request.end_headers()
            return
        request.reply(200, body, content_type, headers)

    return handle


def file(name: str, content_type: str = "text/html; charset=utf-8", **headers: str) -> Handler:
    """Serve a file of ``tests/data/sources``."""
    return page((DATA / name).read_bytes(), content_type, **headers)


def redirect(location: str, status: int = 302) -> Handler:
    """Answer with a redirect to ``location``."""

    def handle(request: _RequestHandler) -> None:
        request.reply(status, b"", None, {"Location": location})

    return handle


def slow(delay: float, body: bytes = b"<html><body><p>late</p></body></html>") -> Handler:
    """Send the headers, then wait ``delay`` seconds before the body."""

    def handle(request: _RequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "text/html")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.flush()
        time.sleep(delay)
        with contextlib.suppress(OSError):
            request.wfile.write(body)

    return handle


def trickle(interval: float, chunks: int) -> Handler:
    """Send a small piece every ``interval`` seconds: never idle long enough for a read time-out."""

    def handle(request: _RequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "text/html")
        request.end_headers()
        try:
            for _ in range(chunks):
                request.wfile.write(b"<p>drip</p>\n")
                request.wfile.flush()
                time.sleep(interval)
        except OSError:
            pass
        request.close_connection = True

    return handle


def trickle_headers(interval: float, count: int = 1000) -> Handler:
    """Send the status line, then the headers one byte every ``interval`` seconds: never a read time-out, no body."""

    def handle(request: _RequestHandler) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Padding: " + b"a" * count + b"\r\n\r\n"
        try:
            for i in range(len(head)):
                request.wfile.write(head[i : i + 1])
                request.wfile.flush()
                time.sleep(interval)
        except OSError:
            request.server.seen.hung_up[request.path] = True
        request.close_connection = True

    return handle


def endless(name: str, total: int, declare_length: bool = False, chunk: int = 64 * 1024) -> Handler:
    """Stream ``total`` bytes of HTML; record in ``seen.streamed[name]`` how many went out before the client hung up."""

    def handle(request: _RequestHandler) -> None:
        seen = request.server.seen
        request.send_response(200)
        request.send_header("Content-Type", "text/html")
        if declare_length:
            request.send_header("Content-Length", str(total))
        else:
            request.send_header("Connection", "close")
        request.end_headers()
        sent = 0
        seen.hung_up[name] = False
        piece = b"<p>" + b"x" * (chunk - 8) + b"</p>\n\n"
        try:
            while sent < total:
                request.wfile.write(piece)
                sent += len(piece)
                seen.streamed[name] = sent
        except OSError:
            seen.hung_up[name] = True
        request.close_connection = True

    return handle


def gzipped(body: bytes, content_type: str = "text/html; charset=utf-8") -> Handler:
    """Serve ``body`` gzip-compressed (Content-Encoding: gzip)."""
    return page(gzip.compress(body), content_type, **{"Content-Encoding": "gzip"})


def free_port_without_server() -> int:
    """Return a 127.0.0.1 port that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
