"""Routing a caller's units during a deployment, in Python: the same answer as
``mlops.route`` (``stream_mlops.deployments.routing``), with the deployment read at most
once every ``ttl_seconds`` per function::

    router = Router(os.environ["DATABASE_URL"])
    slot, version = router.route("summarize", user_id)
    ...call the slot's version, then log deployment_slot=slot, model_version=version

Cached briefly on purpose: a share that grows reaches callers within ``ttl_seconds``,
and a rollback too, while a request never waits on the database. Units keep their slot
as the share grows, so a stale share moves no unit back and forth.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from stream_mlops.db.connect import connect
from stream_mlops.deployments import store
from stream_mlops.deployments.routing import Route


class Router:
    """``(slot, version)`` for a function's unit (see the module docstring)."""

    def __init__(self, database_url: str, *, ttl_seconds: float = 5.0,
                 connect_timeout: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not ttl_seconds >= 0:
            raise ValueError("ttl_seconds must be >= 0")
        self.database_url = database_url
        self.ttl_seconds = ttl_seconds
        self.connect_timeout = connect_timeout
        self.clock = clock
        self._routes: dict[tuple[str | None, str], tuple[float, Route]] = {}
        self._lock = threading.Lock()
        self.reads = 0  # deployments read from the database (the cache's misses)

    def route(self, function_name: str, unit_id: str,
              tenant_id: str | None = None) -> tuple[str, str | None]:
        """The slot and version serving ``unit_id`` (``tenant_id`` None: the login's one
        tenant, else "default", as ``mlops.route``)."""
        return self.current(function_name, tenant_id).of(unit_id)

    def current(self, function_name: str, tenant_id: str | None = None) -> Route:
        """The function's routing as last read (at most ``ttl_seconds`` old)."""
        key = (tenant_id, function_name)
        now = self.clock()
        with self._lock:
            cached = self._routes.get(key)
        if cached is not None and now - cached[0] < self.ttl_seconds:
            return cached[1]
        with connect(self.database_url, timeout=self.connect_timeout,
                     autocommit=True) as conn:
            r = store.route(conn, function_name, tenant_id)
        with self._lock:
            self._routes[key] = (now, r)
            self.reads += 1
        return r
