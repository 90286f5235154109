"""Structured logs on stderr. Secrets never reach a log line: URLs are shown redacted."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any

from psycopg.conninfo import conninfo_to_dict

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in vars(record).items() if k not in _RESERVED})
        if record.exc_info and record.levelno >= logging.ERROR:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _RESERVED)
        line = f"{record.levelname.lower():7s} {record.getMessage()}"
        return f"{line} {extra}" if extra else line


def configure(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("stream_mlops")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # A thread that dies would print a bare traceback to stderr: log it like the rest.
    threading.excepthook = _log_thread_death


def _log_thread_death(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    logging.getLogger("stream_mlops.threads").error(
        "thread died", exc_info=args.exc_value,
        extra={"thread": args.thread.name if args.thread else "?"})


def redact_url(url: str) -> str:
    """``postgresql://u:secret@h:5/db`` -> ``user=u host=h port=5 dbname=db`` (no password)."""
    try:
        parts = conninfo_to_dict(url)
    except Exception:
        return "<unparseable database url>"
    keep = ("user", "host", "port", "dbname")
    return " ".join(f"{k}={parts[k]}" for k in keep if parts.get(k)) or "<default libpq settings>"
