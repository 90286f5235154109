"""What every monitor emits about alerts: a typed key, one change type, one factory.

A monitor decides *that* an alert fires, updates or resolves; the alert store applies the
change to ``mlops.alerts`` (one open episode per key) and queues its e-mail. Nothing here
performs I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Action = Literal["fire", "update", "resolve"]
Notice = Literal["firing", "escalated", "still firing", "resolved"]
Severity = Literal["info", "warning", "critical"]
AlertType = Literal["performance", "cost", "drift", "deployment", "experiment", "pipeline",
                    "feature"]

SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, order=True)
class AlertKey:
    """One alert's identity: at most one open episode per key (``mlops.alerts``)."""

    tenant_id: str
    fingerprint: str

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.fingerprint}"


@dataclass(frozen=True)
class AlertChange:
    """An alert fires (a new episode), updates (still firing, new numbers) or resolves;
    ``notify`` says which message it warrants (None: no message)."""

    action: Action
    key: AlertKey
    alert_type: AlertType
    rule: str
    severity: Severity
    notify: Notice | None
    function_name: str = ""
    title: str = ""
    message: str = ""
    value: float = 0.0
    threshold: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tenant_id(self) -> str:
        return self.key.tenant_id

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint


_DEFAULT_NOTICE: dict[Action, Notice | None] = {
    "fire": "firing", "update": None, "resolve": "resolved"}


def alert_change(action: Action, key: AlertKey, alert_type: AlertType, *, rule: str,
                 severity: Severity = "info", notify: Notice | Literal["default"] | None
                 = "default", function: str | None = None, title: str = "",
                 message: str = "", value: float = 0.0, threshold: float = 0.0,
                 details: Mapping[str, Any] | None = None) -> AlertChange:
    """The one way to make an :class:`AlertChange`.

    By default a fire notifies "firing", a resolve "resolved" and an update nothing.

    Examples
    --------
    >>> c = alert_change("fire", AlertKey("acme", "cost:spike:summarize"), "cost",
    ...                  rule="cost_spike", severity="critical", title="Cost spike")
    >>> c.notify, c.tenant_id, c.fingerprint
    ('firing', 'acme', 'cost:spike:summarize')
    """
    return AlertChange(action, key, alert_type, rule, severity,
                       _DEFAULT_NOTICE[action] if notify == "default" else notify,
                       function or "", title, message, value, threshold, dict(details or {}))


@dataclass
class Episodes:
    """The open episodes of alerts that fire while a condition holds.

    Each evaluation names the keys whose condition holds (``wanted``) and the fire
    changes of those not open yet; every open key no longer wanted resolves.

    Examples
    --------
    >>> e = Episodes()
    >>> k = AlertKey("t", "drift:f:latency")
    >>> fired = [alert_change("fire", k, "drift", rule="drift")]
    >>> [c.action for c in e.settle({k}, fired, lambda key: alert_change(
    ...     "resolve", key, "drift", rule="drift"))], k in e.open
    (['fire'], True)
    >>> [c.action for c in e.settle(set(), [], lambda key: alert_change(
    ...     "resolve", key, "drift", rule="drift"))], e.open
    (['resolve'], set())
    """

    open: set[AlertKey] = field(default_factory=set)

    def settle(self, wanted: set[AlertKey], fired: Iterable[AlertChange],
               resolve: Callable[[AlertKey], AlertChange]) -> list[AlertChange]:
        changes = list(fired)
        changes += [resolve(k) for k in sorted(self.open - wanted)]
        self.open = (self.open & wanted) | {c.key for c in changes if c.action == "fire"}
        return changes
