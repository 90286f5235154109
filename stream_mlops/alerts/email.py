"""Alert e-mails: composing them (pure) and sending them with aiosmtplib."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from stream_mlops.labels import printable


@dataclass(frozen=True)
class Notice:
    """One queued notification, as read from the outbox."""

    kind: str  # firing | escalated | still firing | resolved
    tenant_id: str
    severity: str
    function_name: str | None
    title: str
    message: str
    first_seen: float


@dataclass(frozen=True)
class Smtp:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = None
    timeout: float = 10.0
    ca_file: str | None = None  # a private relay's CA (its certificate is always checked)


def compose(notices: Sequence[Notice], smtp: Smtp, now: float | None = None) -> EmailMessage:
    """One message for everything due at once: a storm becomes a single e-mail."""
    now = time.time() if now is None else now
    firing = [n for n in notices if n.kind != "resolved"]
    resolved = [n for n in notices if n.kind == "resolved"]
    if len(notices) == 1:
        n = notices[0]
        label = "RESOLVED" if n.kind == "resolved" else f"{n.kind.upper()} {n.severity}"
        subject = f"[stream-mlops] {label}: {printable(n.title)}"
    else:
        parts = [f"{len(firing)} firing"] if firing else []
        parts += [f"{len(resolved)} resolved"] if resolved else []
        subject = f"[stream-mlops] {len(notices)} alert updates: {', '.join(parts)}"
    lines = []
    for n in notices:
        since = max(0, int(now - n.first_seen))
        lines += [f"{n.kind.upper()} ({n.severity}) {printable(n.title)}",
                  f"  {printable(n.message)}",
                  f"  tenant: {printable(n.tenant_id)}   "
                  f"function: {printable(n.function_name or '-')}   "
                  f"open for {since // 60} min {since % 60} s", ""]
    lines += ["Acknowledge with: stream-mlops alerts ack <id>   (list: stream-mlops alerts)"]
    msg = EmailMessage()
    msg["From"] = smtp.sender
    msg["To"] = ", ".join(smtp.recipients)
    msg["Subject"] = subject
    msg.set_content("\n".join(lines))
    return msg


async def send(message: EmailMessage, smtp: Smtp) -> None:
    """Send one message; STARTTLS is used whenever the server offers it."""
    await aiosmtplib.send(message, hostname=smtp.host, port=smtp.port, username=smtp.user,
                          password=smtp.password, timeout=smtp.timeout,
                          cert_bundle=smtp.ca_file)
