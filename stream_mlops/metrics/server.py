"""``/metrics``, ``/healthz`` and ``/readyz`` on one port, for Prometheus and probes, and
the built-in live page (``/``, :mod:`stream_mlops.metrics.live`) for people.

``/metrics`` serves what prometheus-client would: gzip when the scraper accepts it,
OpenMetrics when it asks for it, ``?name[]=`` to fetch a few families; the text itself is
written by :mod:`stream_mlops.metrics.exposition` (ten times cheaper at thousands of
series) except where only the library can write it. The server is
bounded, because the port faces networks the tenants may share: at most
``MAX_CONNECTIONS`` requests are served at once (more are closed at once, never queued
behind them), and a client that sends nothing for ``IDLE_TIMEOUT_SECONDS`` is dropped, so
held-open connections cannot pile up threads.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from prometheus_client.exposition import gzip_accepted
from prometheus_client.registry import CollectorRegistry

from stream_mlops.errors import ConfigError
from stream_mlops.metrics import exposition
from stream_mlops.metrics.live import LivePage, Sampler

log = logging.getLogger(__name__)
Check = Callable[[float], list[str]]
StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

MAX_CONNECTIONS = 16
IDLE_TIMEOUT_SECONDS = 5.0
TEXT = "text/plain; charset=utf-8"
GZIP_LEVEL = 1


class _Handler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT_SECONDS  # on the socket: a silent client is dropped

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would drown the structured log


class _BoundedServer(WSGIServer):
    """A thread per request, at most ``MAX_CONNECTIONS`` of them."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: closed now, rather than waiting
            return
        try:
            threading.Thread(target=self._serve, args=(request, client_address),
                             daemon=True).start()
        except Exception:
            self._slots.release()
            raise

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # a broken client: its problem, logged at debug only
            log.debug("request failed", exc_info=True)
        finally:
            self.shutdown_request(request)
            self._slots.release()


def app(registry: CollectorRegistry, *, live: Check, ready: Check,
        page: LivePage | None = None, before_scrape: Callable[[], object] | None = None
        ) -> App:
    """The WSGI application: metrics through prometheus-client, probes and the live page
    of our own. ``before_scrape`` runs before ``/metrics`` is collected (the service's
    waits until the rows committed before the scrape are counted)."""
    metrics = make_wsgi_app(registry)

    def respond(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            if before_scrape is not None:
                before_scrape()
            environ = {**environ,
                       "HTTP_ACCEPT": exposition.readable_accept(environ.get("HTTP_ACCEPT"))}
            try:
                with exposition.collector_paused():
                    return _metrics(registry, environ, start_response) \
                        or metrics(environ, start_response)
            except Exception as exc:  # a bug must not take the endpoint down
                log.exception("collecting metrics failed")
                return _text(start_response, 500, f"collecting metrics failed: {exc!r}\n")
        if path in ("/healthz", "/readyz"):
            reasons = (live if path == "/healthz" else ready)(time.time())
            body = "ok\n" if not reasons else "\n".join(reasons) + "\n"
            return _text(start_response, 503 if reasons else 200, body)
        if page is not None and path in LivePage.ROUTES:
            try:
                return page(environ, start_response)
            except Exception as exc:  # the page must not take /metrics down with it
                log.exception("rendering the live page failed")
                return _text(start_response, 500, f"rendering the page failed: {exc!r}\n")
        return _text(start_response, 404, "not found: try /metrics, /healthz or /readyz\n")

    return respond


def _metrics(registry: CollectorRegistry, environ: dict[str, Any],
             start_response: StartResponse) -> list[bytes] | None:
    """A GET of everything, written by :mod:`~stream_mlops.metrics.exposition`; ``None``
    leaves the request to prometheus-client (other methods, ``?name[]=``, samples that
    only it writes)."""
    if environ.get("REQUEST_METHOD", "GET") != "GET" or "name[]" in parse_qs(
            environ.get("QUERY_STRING", "")):
        return None
    choice = exposition.encoder(environ.get("HTTP_ACCEPT"))
    if choice is None:
        return None
    openmetrics_format, content_type = choice
    body = exposition.render(registry.collect(), openmetrics_format)
    if body is None:
        return None
    headers = [("Content-Type", content_type)]
    if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
        # Level 1: a scrape at thousands of series is tens of MB of repetitive text, which
        # level 1 compresses about 15x at a fraction of the default level's time. A
        # chunk at a time: the plain body is never joined.
        z = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        body = [*(z.compress(chunk) for chunk in body), z.flush()]
        headers.append(("Content-Encoding", "gzip"))
    headers.append(("Content-Length", str(sum(map(len, body)))))
    start_response("200 OK", headers)
    return body


def _text(start_response: StartResponse, code: int, body: str) -> list[bytes]:
    data = body.encode()
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error",
              503: "Service Unavailable"}[code]
    start_response(f"{code} {reason}", [("Content-Type", TEXT),
                                        ("Content-Length", str(len(data)))])
    return [data]


class MetricsServer:
    """Serves in a daemon thread; ``port=0`` picks a free port (see :attr:`port`)."""

    def __init__(
        self, registry: CollectorRegistry, host: str, port: int, *, live: Check, ready: Check,
        live_sample_seconds: float = 10.0, before_scrape: Callable[[], object] | None = None,
    ) -> None:
        self.sampler = Sampler(registry, interval=live_sample_seconds)
        page = LivePage(self.sampler)
        try:
            self.httpd = make_server(host, port, app(registry, live=live, ready=ready,
                                                     page=page, before_scrape=before_scrape),
                                     server_class=_BoundedServer, handler_class=_Handler)
        except (OSError, socket.gaierror) as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port} ({getattr(exc, 'strerror', None) or exc}):"
                " set METRICS_PORT/--metrics-port to a free port"
            ) from exc
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, name="stream-mlops-http", daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        self.sampler.start()
        log.info("serving metrics", extra={"url": f"http://{self.host}:{self.port}/metrics"})
        return self

    def stop(self) -> None:
        self.sampler.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
