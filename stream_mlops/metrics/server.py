"""``/metrics``, ``/healthz`` and ``/readyz`` on a small threaded HTTP server."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from stream_mlops.errors import ConfigError

log = logging.getLogger(__name__)
Check = Callable[[float], list[str]]


class MetricsServer:
    """Serves in a daemon thread; ``port=0`` picks a free port (see :attr:`port`)."""

    def __init__(
        self, registry: CollectorRegistry, host: str, port: int, *, live: Check, ready: Check
    ) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    try:
                        body = generate_latest(server.registry)
                    except Exception as exc:  # a bug must not take the endpoint down
                        log.exception("collecting metrics failed")
                        self._send(500, f"collecting metrics failed: {exc!r}\n".encode(),
                                   "text/plain; charset=utf-8")
                        return
                    self._send(200, body, CONTENT_TYPE_LATEST)
                elif path in ("/healthz", "/readyz"):
                    reasons = (server.live if path == "/healthz" else server.ready)(time.time())
                    body = ("ok\n" if not reasons else "\n".join(reasons) + "\n").encode()
                    self._send(503 if reasons else 200, body, "text/plain; charset=utf-8")
                else:
                    self._send(404, b"not found: try /metrics, /healthz or /readyz\n",
                               "text/plain; charset=utf-8")

            def _send(self, code: int, body: bytes, ctype: str) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # scrapes every few seconds would drown the structured log

        self.registry, self.live, self.ready = registry, live, ready
        try:
            self.httpd = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}): "
                "set METRICS_PORT/--metrics-port to a free port"
            ) from exc
        self.httpd.daemon_threads = True
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="stream-mlops-http", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        log.info("serving metrics", extra={"url": f"http://{self.host}:{self.port}/metrics"})
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
