"""Configuration from the environment (names from the original guide) and CLI flags."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from stream_mlops.errors import ConfigError

# Catching up, a batch's fixed cost is one upsert per series it touches: larger batches
# spread it (50,000 rows over 1,000 series: 434k rows/s against 336k at 20,000 and 382k at
# 100,000, benchmarks/pipeline.py --only throughput).
BATCH_SIZE = 50_000


class Settings(BaseSettings):
    """Every knob of the processor; environment variables take the upper-case field name."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = Field(description="libpq URL or conninfo of the Postgres database")
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65535)
    # How often the built-in live page (GET / on the metrics port) samples for its charts.
    live_sample_seconds: float = Field(default=10.0, ge=0.5, le=600)
    consumer_name: str = Field(default="default", min_length=1, max_length=100)
    batch_size: int = Field(default=BATCH_SIZE, ge=1, le=1_000_000)
    poll_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    min_batch_interval_seconds: float = Field(default=0.1, ge=0, le=10)
    # Series (function, model, variant) per tenant, and in all, before new ones fold into
    # the tenant's own __other__ series (per-tenant overrides: max_series in thresholds).
    max_series_per_tenant: int = Field(default=1000, ge=1, le=1_000_000)
    max_series: int = Field(default=50_000, ge=1, le=10_000_000)
    max_future_skew_seconds: float = Field(default=300.0, ge=0)
    lag_threshold_seconds: float = Field(default=60.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # Performance alerts (per-function overrides live in mlops.thresholds).
    alert_error_rate: float = Field(default=0.05, gt=0, lt=1)
    alert_latency_p95_seconds: float = Field(default=5.0, gt=0)
    alert_confidence: float = Field(default=0.70, gt=0, lt=1)
    alert_min_requests: int = Field(default=50, ge=1)
    alert_window_seconds: float = Field(default=60.0, ge=5, le=86400)
    alert_cooldown_seconds: float = Field(default=3600.0, ge=0)
    # Cost budgets (the guide's names) and the time zone of calendar days, weeks, months.
    daily_cost_threshold: float = Field(default=1.0, ge=0)
    weekly_cost_threshold: float = Field(default=5.0, ge=0)
    monthly_cost_threshold: float = Field(default=20.0, ge=0)
    cost_timezone: str = "UTC"
    # Spend spikes: the last 15 minutes' rate against the same time of day on the last
    # days, paged only above a minimum spend; cost per request against its 7-day median.
    cost_spike_factor: float = Field(default=5.0, gt=1)
    cost_spike_min_usd_per_hour: float = Field(default=0.25, ge=0)
    cost_per_request_factor: float = Field(default=2.0, gt=1)
    # Caller-sent costs further than this (relative) from the price table are reported.
    cost_mismatch_tolerance: float = Field(default=0.01, gt=0, lt=1)
    # Model cards: regenerated every so many days (and on drift and deployments), over a
    # window of so many days.
    card_regenerate_days: float = Field(default=7.0, gt=0, le=366)
    card_window_days: float = Field(default=7.0, gt=0, le=366)
    # E-mail (the guide's names); alerts are e-mailed when SMTP_HOST and ALERT_EMAIL are set.
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_user: str | None = None
    smtp_password: str | None = Field(default=None, repr=False)
    smtp_from: str = "stream-mlops@localhost"
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    smtp_ca_file: str | None = None
    alert_email: str | None = None
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|text)$")

    @field_validator("database_url")
    @classmethod
    def _url_parses(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("is empty")
        try:
            conninfo_to_dict(v)
        except psycopg.ProgrammingError:
            # libpq's message quotes what it could not parse (maybe the password).
            raise ValueError("cannot be parsed as a PostgreSQL URL or conninfo (in a URL, "
                             "percent-encode special characters of the password: a space "
                             "is %20, % is %25, @ is %40)") from None
        return v

    @field_validator("cost_timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not an IANA time zone such as UTC or Europe/Berlin") from None
        return v

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return v


def email_enabled(s: Settings) -> bool:
    return bool(s.smtp_host and s.alert_email)


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment; flags given as ``overrides`` win.

    Raises :class:`ConfigError` with one line naming the variable and the problem.
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]).upper() if err["loc"] else "setting"
        if err["type"] == "missing":
            if name == "DATABASE_URL":
                raise ConfigError(
                    "DATABASE_URL is not set: export DATABASE_URL=postgresql://user@host:5432/db"
                ) from None
            raise ConfigError(f"{name} is not set") from None
        value = err.get("input")
        shown = "<hidden>" if name in ("DATABASE_URL", "SMTP_PASSWORD") else repr(value)
        why = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{name}={shown} is invalid: {why}") from None
