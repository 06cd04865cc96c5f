"""Logging and the HTTP endpoints every service serves.

structlog is configured once, from a service's ``main()``: readable console
lines on a terminal, JSON lines otherwise. The HTTP server (stdlib, one daemon
thread) serves ``/metrics`` from the service's own registry, ``/healthz``,
``/readyz`` and optional JSON documents such as the engine's ``/state``.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

HEALTH_STALE_AFTER_S = 60.0


def configure_logging(level: str, fmt: str) -> None:
    """Console output on a TTY (or when asked), JSON lines otherwise."""
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


class Health:
    """Liveness (the loop ticks) and readiness, thread-safe.

    Ready means the service says it works (``set_ready``) and its broker is
    reachable (``set_connected``, kept by the service shell).
    """

    def __init__(self, stale_after_s: float = HEALTH_STALE_AFTER_S) -> None:
        self._ready = threading.Event()
        self._connected = threading.Event()
        self._connected.set()
        self._last_tick = time.monotonic()
        self._stale_after_s = stale_after_s

    def tick(self) -> None:
        self._last_tick = time.monotonic()

    def set_ready(self, ready: bool = True) -> None:
        if ready:
            self._ready.set()
        else:
            self._ready.clear()

    def set_connected(self, connected: bool) -> None:
        if connected:
            self._connected.set()
        else:
            self._connected.clear()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._connected.is_set()

    @property
    def alive(self) -> bool:
        return time.monotonic() - self._last_tick < self._stale_after_s


JsonView = Callable[[], Mapping[str, Any]]


def _handler(
    registry: CollectorRegistry, health: Health, views: Mapping[str, JsonView]
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._status(health.alive, "alive", "loop stalled")
            elif path == "/readyz":
                self._status(health.ready, "ready", "not ready")
            elif path in views:
                self._view(path, views[path])
            else:
                self._send(404, b"not found\n", "text/plain")

        def _view(self, path: str, view: JsonView) -> None:
            """A view that raises answers 500 with the error, logged, instead of a dropped
            connection (the server thread would otherwise only print a traceback)."""
            try:
                body = orjson.dumps(view())
            except Exception as exc:  # any failure of a view is reported the same way
                error = f"{type(exc).__name__}: {exc}"
                structlog.get_logger("http").error("view_failed", path=path, error=error)
                self._send(500, orjson.dumps({"error": error}), "application/json")
                return
            self._send(200, body, "application/json")

        def _status(self, ok: bool, yes: str, no: str) -> None:
            self._send(200 if ok else 503, f"{yes if ok else no}\n".encode(), "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes every few seconds would drown the service's own logs."""

    return Handler


class HttpServer:
    """``/metrics``, ``/healthz``, ``/readyz`` and JSON views on one port."""

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        health: Health,
        views: Mapping[str, JsonView] | None = None,
    ) -> None:
        self._server = ThreadingHTTPServer(
            (host, port), _handler(registry, health, views if views is not None else {})
        )
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
