"""The Grafana dashboards, written as code with grafana-foundation-sdk.

``python -m stream_mlops.dev.dashboards`` writes ``grafana/dashboards/*.json``, which
Grafana provisions (``grafana/provisioning``); ``tests/unit/test_dashboards.py`` fails
when the committed JSON differs from what this module generates, so the JSON is never
edited by hand. Every dashboard has the template variables ``tenant``, ``function`` and
``model`` (multi-value, "All" matches everything, a value matching nothing gives "no
data", never an error), refreshes every 30 s and links to the others.

Thresholds are drawn from the processor's exported threshold gauges
(``mlops_alert_threshold{tenant,function,rule}``) as a dashed red series, so a line
crosses the red one exactly where an alert fires; constants appear only where the
quantity is itself relative to its limit (a budget's utilisation, a detector level
normalised to its alarm threshold).

The generator is a dev tool: grafana-foundation-sdk is in the ``dev`` extra.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Self, cast

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import heatmap, stat, table, timeseries
from grafana_foundation_sdk.builders.prometheus import Dataquery as PromQuery
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

OUT_DIR = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
TAG = "stream-mlops"
REFRESH = "30s"
PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid="prometheus")
POSTGRES = model.DataSourceRef(type_val="grafana-postgresql-datasource", uid="postgres")

# Label matchers of the template variables, for series with these labels.
T = 'tenant=~"$tenant"'
TF = f'{T}, function=~"$function"'
TFM = f'{TF}, model=~"$model"'
# SQL: Grafana renders a multi-value variable as `(a|b)` with :regex, All as `.*`.
SQL_T = "tenant_id ~ '^${tenant:regex}$'"
SQL_TF = f"{SQL_T} AND function_name ~ '^${{function:regex}}$'"


# --- the Postgres query (the SDK ships no builder for the SQL datasources) ------------
class SqlQuery(cogvariants.Dataquery):
    """A query of Grafana's PostgreSQL datasource (raw SQL)."""

    def __init__(self, raw_sql: str, fmt: str = "table", ref_id: str | None = None) -> None:
        self.raw_sql, self.format, self.ref_id = raw_sql, fmt, ref_id

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"datasource": POSTGRES.to_json(), "editorMode": "code",
                                  "format": self.format, "rawQuery": True,
                                  "rawSql": self.raw_sql}
        if self.ref_id is not None:
            out["refId"] = self.ref_id
        return out


class Sql(cogbuilder.Builder[SqlQuery]):
    def __init__(self, raw_sql: str, fmt: str = "table") -> None:
        self._internal = SqlQuery(" ".join(raw_sql.split()), fmt)

    def build(self) -> SqlQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> Self:
        self._internal.ref_id = ref_id
        return self


def sql_annotation(name: str, raw_sql: str) -> model.AnnotationQuery:
    """Annotations from a Postgres query (columns time, text, tags)."""
    a = model.AnnotationQuery(name=name, datasource=POSTGRES, enable=True, icon_color="red")
    # The model types `target` as Grafana's built-in annotation filter; a datasource
    # annotation carries that datasource's query there instead.
    a.target = cast(Any, Sql(raw_sql).ref_id("Anno").build())
    return a


class _Ready(cogbuilder.Builder[model.AnnotationQuery]):
    def __init__(self, built: model.AnnotationQuery) -> None:
        self._built = built

    def build(self) -> model.AnnotationQuery:
        return self._built


# --- expressions that may legitimately return nothing ---------------------------------
MAY_BE_EMPTY: dict[str, str] = {}
"""PromQL expressions allowed to return no series in the proof test, with the reason.
Every other expression must return data once the simulator has run every scenario."""


def maybe_empty(expr: str, why: str) -> str:
    MAY_BE_EMPTY[expr] = why
    return expr


def threshold(rule: str) -> str:
    """The exported alert threshold of ``rule``, one dashed series per function."""
    return f'max by (function) (mlops_alert_threshold{{{TF}, rule="{rule}"}})'


# --- panels ----------------------------------------------------------------------------
def prom(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False) -> PromQuery:
    q = PromQuery().expr(expr).ref_id(ref).datasource(PROMETHEUS)
    q = q.legend_format(legend or "__auto")
    return q.instant() if instant else q.range()


def _steps(*steps: tuple[float | None, str]) -> dash.ThresholdsConfig:
    return dash.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=v, color=c) for v, c in steps])


GREEN = ((None, "green"),)


def describe(means: str, red: str) -> str:
    return f"{means}\n\nWhen red: {red}"


def series(title: str, means: str, red: str, unit: str, *queries: PromQuery,
           w: int = 12, h: int = 8, stack: bool = False) -> timeseries.Panel:
    """A time series; a query with ref id ``T`` is a threshold, drawn dashed in red."""
    p = (timeseries.Panel().title(title).description(describe(means, red)).unit(unit)
         .span(w).height(h).datasource(PROMETHEUS).fill_opacity(10 if stack else 0)
         .legend(cb.VizLegendOptions().show_legend(True)
                 .display_mode(common.LegendDisplayMode.TABLE)
                 .placement(common.LegendPlacement.RIGHT)
                 .calcs(["lastNotNull", "max"])))
    for q in queries:
        p = p.with_target(q)
    if any(q.build().ref_id == "T" for q in queries):
        p = p.override_by_query("T", [
            model.DynamicConfigValue(id_val="custom.lineStyle",
                                     value={"fill": "dash", "dash": [10, 10]}),
            model.DynamicConfigValue(id_val="color",
                                     value={"mode": "fixed", "fixedColor": "red"}),
            model.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
            model.DynamicConfigValue(id_val="displayName", value="threshold ${__field.labels}"),
        ])
    return p


def big(title: str, means: str, red: str, unit: str, query: PromQuery, *,
        steps: dash.ThresholdsConfig, w: int = 4, h: int = 5,
        mappings: Sequence[model.ValueMapping] = ()) -> stat.Panel:
    p = (stat.Panel().title(title).description(describe(means, red)).unit(unit).span(w)
         .height(h).datasource(PROMETHEUS).with_target(query).thresholds(steps)
         .color_mode(common.BigValueColorMode.BACKGROUND)
         .graph_mode(common.BigValueGraphMode.AREA).no_value("no data"))
    if mappings:
        p = p.mappings(list(mappings))
    return p


def sql_table(title: str, means: str, red: str, query: str, *, w: int = 24,
              h: int = 9, datasource: model.DataSourceRef = POSTGRES) -> table.Panel:
    return (table.Panel().title(title).description(describe(means, red)).span(w).height(h)
            .datasource(datasource).with_target(Sql(query).ref_id("A"))
            .no_value("no rows"))


def prom_table(title: str, means: str, red: str, *queries: PromQuery, w: int = 12,
               h: int = 8, unit: str = "short") -> table.Panel:
    p = (table.Panel().title(title).description(describe(means, red)).span(w).height(h)
         .datasource(PROMETHEUS).unit(unit).no_value("no data")
         .with_transformation(model.DataTransformerConfig(id_val="merge", options={})))
    for q in queries:
        p = p.with_target(q.format(PromQueryFormat.TABLE))
    return p


def up_down(ok: str = "OK", bad: str = "DOWN") -> list[model.ValueMapping]:
    return [model.ValueMap(options={
        "1": model.ValueMappingResult(text=ok, color="green", index=0),
        "0": model.ValueMappingResult(text=bad, color="red", index=1)})]


# --- dashboards ------------------------------------------------------------------------
def _variable(name: str, query: str) -> dash.QueryVariable:
    return (dash.QueryVariable(name).label(name).datasource(PROMETHEUS)
            .query({"query": query, "refId": f"{name}-values"})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC).multi(True).include_all(True)
            .all_value(".*").current(model.VariableOption(selected=True, text="All",
                                                           value="$__all")))


def base(uid: str, title: str, description: str) -> dash.Dashboard:
    return (dash.Dashboard(title).uid(uid).description(description).tags([TAG])
            .refresh(REFRESH).time("now-1h", "now").timezone("browser").editable()
            .tooltip(model.DashboardCursorSync.CROSSHAIR)
            .with_variable(_variable("tenant", "label_values(mlops_requests_total, tenant)"))
            .with_variable(_variable(
                "function", 'label_values(mlops_requests_total{tenant=~"$tenant"}, function)'))
            .with_variable(_variable(
                "model", 'label_values(mlops_requests_total{tenant=~"$tenant",'
                ' function=~"$function"}, model)'))
            .link(dash.DashboardLink("stream-mlops").type(model.DashboardLinkType.DASHBOARDS)
                  .tags([TAG]).as_dropdown(False).include_vars(True).keep_time(True)))


ERROR_RATIO_BY_FUNCTION = (
    f'sum by (function) (rate(mlops_requests_total{{{TFM}, status="error"}}[$__rate_interval]))'
    f" / sum by (function) (rate(mlops_requests_total{{{TFM}}}[$__rate_interval]))")
P95_BY_FUNCTION = ("histogram_quantile(0.95, sum by (function, le) "
                   f"(rate(mlops_request_duration_seconds_bucket{{{TFM}}}[$__rate_interval])))")
RPS_BY_FUNCTION = f"sum by (function) (rate(mlops_requests_total{{{TFM}}}[$__rate_interval]))"


def overview() -> dash.Dashboard:
    d = base("mlops-overview", "stream-mlops / Overview",
             "Is anything wrong right now? Requests, errors, latency, cost, alerts and the "
             "processor's health; drill down through the links above.")
    # A count of nothing is 0, so "or vector(0)" is the true answer, not a cover-up.
    over = (f"count(({ERROR_RATIO_BY_FUNCTION.replace('$__rate_interval', '5m')}) > on "
            f"(function) ({threshold('error_rate')})) or vector(0)")
    d = d.with_row(dash.Row("Now"))
    panel: cogbuilder.Builder[model.Panel]
    for panel in (
        big("Requests / s", "Requests per second over the last 5 minutes, all selected "
            "functions.", "never red; a drop to zero means callers stopped logging or the "
            "processor stopped consuming: check Processor health.", "reqps",
            prom(f"sum(rate(mlops_requests_total{{{TFM}}}[5m]))"), steps=_steps(*GREEN)),
        big("Error ratio", "Share of requests with status error over the last 5 minutes.",
            "more than 5 % of requests fail: open Performance, find the function, read its "
            "error types in the Alerts table.", "percentunit",
            prom(f'sum(rate(mlops_requests_total{{{TFM}, status="error"}}[5m])) / '
                 f"sum(rate(mlops_requests_total{{{TFM}}}[5m]))"),
            steps=_steps((None, "green"), (0.05, "red"))),
        big("Functions over error threshold", "How many functions' 5-minute error ratio is "
            "above their exported alert threshold (mlops_alert_threshold).",
            "one or more functions are alerting: open Performance with that function.",
            "short", prom(over), steps=_steps((None, "green"), (1, "red"))),
        big("p95 latency", "95th percentile of request latency over 5 minutes (from the "
            "histogram).", "calls got slow: open Performance, compare models and variants; "
            "check the provider's status page.", "s",
            prom("histogram_quantile(0.95, sum by (le) "
                 f"(rate(mlops_request_duration_seconds_bucket{{{TFM}}}[5m])))"),
            steps=_steps((None, "green"), (5, "red"))),
        big("Cost today / budget", "Share of today's budget (calendar day, COST_TIMEZONE) "
            "spent, the highest tenant.", "today's budget is spent: open Costs, find the top "
            "spender, consider the model recommendations.", "percentunit",
            prom(f'max(mlops_budget_utilization_ratio{{{T}, function="", period="day"}})'),
            steps=_steps((None, "green"), (0.8, "orange"), (1, "red"))),
        big("Firing alerts", "Open alert episodes of the processor's own rules, "
            "performance and deployments.",
            "open Alerts: each row says what fired and since when.", "short",
            prom(f"(sum(mlops_alert_active{{{TF}}}) or vector(0)) + "
                 f"(sum(mlops_deployment_alert_active{{{TF}}}) or vector(0))"),
            steps=_steps((None, "green"), (1, "red"))),
    ):
        d = d.with_panel(panel)
    for panel in (
        big("Cost today", "US dollars spent today (calendar day, COST_TIMEZONE), priced "
            "requests only.", "never red; compare with the budget beside it.", "currencyUSD",
            prom(f'sum(mlops_cost_window_usd{{{TFM}, window="day"}})'), steps=_steps(*GREEN)),
        big("Processor lag", "Age of the oldest committed row not processed yet.",
            "over 60 s the processor falls behind: check its log, the database load and "
            "Horizon age.", "s", prom("max(mlops_processor_lag_seconds)"),
            steps=_steps((None, "green"), (10, "orange"), (60, "red"))),
        big("Processor up", "Whether Prometheus can scrape the processor.",
            "the processor is down or unreachable: restart it; nothing is lost, it resumes "
            "from its checkpoint.", "short", prom('min(up{job="stream-mlops"})'),
            steps=_steps((None, "red"), (1, "green")), mappings=up_down()),
        big("Consumer active", "1 while this process holds the consumer lock (0: a standby).",
            "no process is consuming: start one, or check the one holding the lock.", "short",
            prom("max(mlops_processor_active)"), steps=_steps((None, "red"), (1, "green")),
            mappings=up_down("active", "standby")),
        big("Jobs failing", "Periodic jobs (rules, drift, costs, e-mail) failing or down.",
            "read the processor's log for the job's traceback; it retries with backoff.",
            "short", prom("count(mlops_job_up == 0) or vector(0)"),
            steps=_steps((None, "green"), (1, "red"))),
        big("Quarantined rows / h", "Rows set aside as unprocessable in the last hour.",
            "callers log malformed rows: read mlops.quarantine for the reason.", "short",
            prom("sum(increase(mlops_processor_quarantined_total[1h]))"),
            steps=_steps((None, "green"), (1, "orange"))),
    ):
        d = d.with_panel(panel)
    d = d.with_row(dash.Row("Trends"))
    for panel in (
        series("Requests / s by function", "Request rate per function.",
               "never red; a function at zero stopped logging.", "reqps",
               prom(RPS_BY_FUNCTION, "{{function}}"), w=8),
        series("Error ratio by function", "Share of failing requests; dashed red: the "
               "function's alert threshold.", "the line is above its threshold: open "
               "Performance for that function.", "percentunit",
               prom(ERROR_RATIO_BY_FUNCTION, "{{function}}"),
               prom(threshold("error_rate"), "{{function}}", "T"), w=8),
        series("p95 latency by function", "95th percentile latency; dashed red: the "
               "function's threshold.", "above the dashed line: open Performance.", "s",
               prom(P95_BY_FUNCTION, "{{function}}"),
               prom(threshold("latency_p95"), "{{function}}", "T"), w=8),
        series("Processor lag and horizon age", "Lag: oldest unprocessed row. Horizon: "
               "oldest open writing transaction, which holds the consumer back.",
               "lag above 60 s: the processor falls behind; a growing horizon: a long "
               "transaction in the application blocks it.", "s",
               prom("max(mlops_processor_lag_seconds)", "lag"),
               prom("max(mlops_processor_horizon_age_seconds)", "horizon", "B"), w=12),
        series("Processor events / s", "Rows consumed per second by the processor.",
               "flat at zero while requests arrive: the processor is stuck.", "reqps",
               prom("sum(rate(mlops_processor_events_total[$__rate_interval]))", "events"),
               w=12),
    ):
        d = d.with_panel(panel)
    return d


def performance() -> dash.Dashboard:
    d = base("mlops-performance", "stream-mlops / Performance",
             "Per function, model and variant: traffic, errors, latency and confidence, "
             "each against its exported alert threshold.")
    by = "function, model, variant"
    legend = "{{function}} {{model}} {{variant}}"
    panel: cogbuilder.Builder[model.Panel]
    for panel in (
        series("Requests / s", "Request rate per function, model and variant.",
               "never red; a series at zero stopped logging.", "reqps",
               prom(f"sum by ({by}) (rate(mlops_requests_total{{{TFM}}}[$__rate_interval]))",
                    legend)),
        series("Error ratio", "Share of failing requests; dashed red: the alert threshold "
               "(mlops_alert_threshold, rule error_rate).", "above the dashed line: read the "
               "error types below and the provider's status.", "percentunit",
               prom(ERROR_RATIO_BY_FUNCTION, "{{function}}"),
               prom(threshold("error_rate"), "{{function}}", "T")),
        series("p95 latency", "95th percentile latency per function, model and variant; "
               "dashed red: the threshold (rule latency_p95).",
               "above the dashed line: compare models/variants here; a new model or prompt "
               "may be slower.", "s",
               prom("histogram_quantile(0.95, sum by (function, model, variant, le) "
                    f"(rate(mlops_request_duration_seconds_bucket{{{TFM}}}"
                    "[$__rate_interval])))", legend),
               prom(threshold("latency_p95"), "{{function}}", "T")),
        (heatmap.Panel().title("Latency distribution")
         .description(describe("Requests per latency bucket over time (the histogram).",
                               "a band moving up: latency regressed for many requests, not "
                               "a few outliers."))
         .span(12).height(8).datasource(PROMETHEUS).calculate(False)
         .with_target(prom("sum by (le) (increase(mlops_request_duration_seconds_bucket"
                           f"{{{TFM}}}[$__rate_interval]))", "{{le}}")
                      .format(PromQueryFormat.HEATMAP))
         .y_axis(heatmap.YAxisConfig().unit("s"))),
        series("Mean confidence", "Mean confidence reported by callers (0..1); dashed red: "
               "the lower threshold (rule confidence_mean).", "below the dashed line: the "
               "model is less sure; look for input drift on the Drift dashboard.",
               "percentunit",
               prom("sum by (function) (rate(mlops_confidence_sum"
                    f"{{{TFM}}}[$__rate_interval])) / sum by (function) "
                    f"(rate(mlops_confidence_count{{{TFM}}}[$__rate_interval]))", "{{function}}"),
               prom(threshold("confidence_mean"), "{{function}}", "T")),
        series("Tokens / s by type", "Prompt (including cached), completion and cached "
               "tokens per second.", "never red; a jump in prompt tokens drives cost: see "
               "Costs.", "short",
               prom(f"sum by (type) (rate(mlops_tokens_total{{{TFM}}}[$__rate_interval]))",
                    "{{type}}")),
        series("Errors / s by variant", "Failing requests per second per variant.",
               "one variant fails more: check the Experiments dashboard.", "reqps",
               prom("sum by (function, variant) (rate(mlops_requests_total"
                    f'{{{TFM}, status="error"}}[$__rate_interval]))',
                    "{{function}} {{variant}}")),
        series("Operation duration by provider (OTel GenAI)", "p95 of "
               "gen_ai.client.operation.duration by provider and model, the OpenTelemetry "
               "GenAI view of the same calls (its labels have no tenant or function: the "
               "variables filter the model only).", "as p95 latency above.", "s",
               prom("histogram_quantile(0.95, sum by (gen_ai_provider_name, "
                    "gen_ai_request_model, le) (rate(gen_ai_client_operation_duration_seconds"
                    '_bucket{gen_ai_request_model=~"$model"}[$__rate_interval])))',
                    "{{gen_ai_provider_name}} {{gen_ai_request_model}}")),
    ):
        d = d.with_panel(panel)
    return d


def costs() -> dash.Dashboard:
    d = base("mlops-costs", "stream-mlops / Costs",
             "Spend in calendar and rolling windows, budgets and their forecast, the spend "
             "rate against its seasonal baseline, top spenders and unpriced requests.")
    panel: cogbuilder.Builder[model.Panel]
    for panel in (
        prom_table("Spend by window", "US dollars over calendar windows (day, week, month "
                   "in COST_TIMEZONE) and rolling ones (1h, 24h, 7d).", "never red; compare "
                   "with the budgets beside it.",
                   prom(f"sum by (window) (mlops_cost_window_usd{{{TFM}}})", "{{window}}",
                        instant=True), unit="currencyUSD", w=8),
        series("Budget utilisation", "Share of each period's budget spent; 1 = spent.",
               "at or above 100 %: the budget is spent; find the top spender below.",
               "percentunit",
               prom(f"max by (tenant, function, period) (mlops_budget_utilization_ratio{{{TF}}})",
                    "{{tenant}} {{function}} {{period}}"), w=8),
        series("Forecast vs budget", "End-of-period spend at the current burn rate, and the "
               "budget (dashed red).", "the forecast line is above the budget: the period "
               "will overspend at this rate.", "currencyUSD",
               prom(f"max by (tenant, function, period) (mlops_cost_forecast_usd{{{TF}}})",
                    "forecast {{tenant}} {{function}} {{period}}"),
               prom(f"max by (tenant, function, period) (mlops_budget_usd{{{TF}}})",
                    "budget {{tenant}} {{function}} {{period}}", "T"), w=8),
        series("Spend rate vs seasonal baseline", "USD per hour over the last 15 minutes, "
               "and the seasonal baseline of the spike rule (dashed; absent until there is "
               "a week of history).", "the rate is far above its baseline: a cost spike; "
               "check tokens per request on Performance.", "currencyUSD",
               prom(f"sum by (function) (mlops_cost_rate_usd_per_hour{{{TF}}})",
                    "{{function}}"),
               prom(maybe_empty(
                   f"sum by (function) (mlops_cost_baseline_usd_per_hour{{{TF}}})",
                   "the seasonal baseline needs hours of history"), "{{function}}", "T")),
        prom_table("Top spenders (24 h)", "The ten tenant/function/model series that spent "
                   "most over the last 24 hours.", "never red; the top row is where savings "
                   "are.",
                   prom(f"topk(10, sum by (tenant, function, model) (mlops_cost_window_usd"
                        f'{{{TFM}, window="24h"}}))', instant=True), unit="currencyUSD"),
        series("Cost per request by model", "Mean US dollars per request over the last hour.",
               "a model got more expensive per call: longer prompts or a price change.",
               "currencyUSD",
               prom(f"sum by (model) (rate(mlops_cost_usd_total{{{TFM}}}[1h])) / "
                    f"sum by (model) (rate(mlops_requests_total{{{TFM}}}[1h]))", "{{model}}")),
        series("Cost per request vs baseline", "Recent cost per request per function and its "
               "7-day median (dashed).", "well above the dashed line: prompts or answers "
               "got longer.", "currencyUSD",
               prom(f"max by (function) (mlops_cost_per_request_usd{{{TF}}})", "{{function}}"),
               prom(maybe_empty(
                   f"max by (function) (mlops_cost_per_request_baseline_usd{{{TF}}})",
                   "the 7-day median needs hours of history"), "{{function}}", "T")),
        series("Unpriced requests / s", "Requests whose model has no price: their cost is "
               "unknown and missing from every total above.", "add the model's price "
               "(stream-mlops prices) so its cost is counted.", "reqps",
               prom("sum by (model) (rate(mlops_unpriced_requests_total"
                    f"{{{TFM}}}[$__rate_interval]))", "{{model}}")),
        sql_table("Daily cost by function (Postgres)", "Calendar days from "
                  "mlops.cost_tracking, as the reader role sees them.",
                  "never red; the history behind the windows above.",
                  "SELECT date_trunc('day', period_start) AS day, tenant_id AS tenant,"
                  " function_name AS function, model, sum(request_count) AS requests,"
                  " sum(cost_usd)::float8 AS cost_usd FROM mlops.cost_tracking"
                  f" WHERE {SQL_TF} AND model ~ '^${{model:regex}}$'"
                  " AND $__timeFilter(period_start)"
                  " GROUP BY 1, 2, 3, 4 ORDER BY 1 DESC, 6 DESC LIMIT 500"),
    ):
        d = d.with_panel(panel)
    return d


def drift() -> dash.Dashboard:
    d = base("mlops-drift", "stream-mlops / Drift",
             "Detector levels, confirmed drifts (annotations), the tests' p-values and "
             "effect sizes, and pinned references.")
    d = d.annotation(_Ready(sql_annotation(
        "Confirmed drifts",
        "SELECT detected_at AS time, function_name || ': ' || metric_name || ' drifted ('"
        " || test_name || ', p = ' || round(p_value::numeric, 4) || ')' AS text,"
        " tenant_id AS tags FROM mlops.drift_detection WHERE drift_detected"
        f" AND {SQL_TF} AND $__timeFilter(detected_at) ORDER BY detected_at")))
    panel: cogbuilder.Builder[model.Panel]
    for panel in (
        series("Detector level (1 = alarm)", "Highest CUSUM level of each metric's detector "
               "relative to its alarm threshold; at 1 the detector alarms and the two-sample "
               "tests decide.", "a line at or above 1 that the tests confirm opens a drift "
               "alert: read the evidence table below.", "short",
               prom(f"max by (function, metric) (mlops_drift_statistic{{{TF}}})",
                    "{{function}} {{metric}}"), w=12),
        series("Confirmed drifts (last hour)", "Drifts confirmed by the detector and the "
               "tests, per function and metric.", "a drift was confirmed: decide whether the "
               "change is intended (relearn the reference) or a problem (pin it).", "short",
               prom("sum by (function, metric) (increase(mlops_drift_events_total"
                    f"{{{TF}}}[1h]))", "{{function}} {{metric}}"), w=12),
        series("Two-sample test p-value", "Latest p-value of recent values against the "
               "reference (low: different distributions).", "below the test's threshold: "
               "the distribution moved; see the effect size below.", "short",
               prom(maybe_empty(f"min by (function, metric) (mlops_drift_p_value{{{TF}}})",
                                "a p-value exists only after a detector alarmed"),
                    "{{function}} {{metric}}"), w=12),
        big("Drift alerts open", "Confirmed drifts whose alert is open.",
            "open the evidence table below; pin or relearn the reference.", "short",
            prom(f"sum(mlops_drift_detected{{{TF}}})"),
            steps=_steps((None, "green"), (1, "red")), w=12, h=8),
        sql_table("Drift evidence (Postgres)", "Every test the detector ran: statistic, "
                  "p-value, threshold and effect size, newest first.",
                  "a row with drift_detected: the tests confirmed the change.",
                  "SELECT detected_at, tenant_id AS tenant, function_name AS function, model,"
                  " metric_name AS metric, test_name AS test, statistic, p_value, threshold,"
                  " effect_size, drift_detected FROM mlops.drift_detection"
                  f" WHERE {SQL_TF} AND $__timeFilter(detected_at)"
                  " ORDER BY detected_at DESC LIMIT 200"),
        sql_table("References (Postgres)", "Pinned references (kept after a drift) and "
                  "relearn requests, per function and metric.",
                  "never red; a pinned reference keeps its alert open while the data stay "
                  "away from it.",
                  "SELECT tenant_id AS tenant, function_name AS function, metric, pinned,"
                  " relearn_from, updated_at FROM mlops.drift_references"
                  f" WHERE {SQL_TF} ORDER BY updated_at DESC", h=6),
    ):
        d = d.with_panel(panel)
    return d


def experiments() -> dash.Dashboard:
    d = base("mlops-experiments", "stream-mlops / Experiments",
             "A/B tests per arm: requests and sample ratio, means with intervals, lift, "
             "the always-valid p-value and the decision.")
    panel: cogbuilder.Builder[model.Panel]
    for panel in (
        series("Requests per arm", "Requests counted in each arm of a running experiment.",
               "never red; an arm far from its weight shows in SRM.", "short",
               prom(f"sum by (experiment, variant) (mlops_experiment_samples{{{T}}})",
                    "{{experiment}} {{variant}}"), w=8),
        series("Sample ratio mismatch p-value", "Always-valid p-value that the split matches "
               "the weights.", "SRM: the assignment is broken; distrust every result of the "
               "experiment until it is fixed.", "short",
               prom(f"min by (experiment) (mlops_experiment_srm_p_value{{{T}}})",
                    "{{experiment}}"), w=8),
        big("SRM detected", "Experiments whose split does not match the weights.",
            "fix the assignment before reading any result.", "short",
            prom(f"sum(mlops_experiment_srm{{{T}}})"), steps=_steps((None, "green"), (1, "red")),
            w=8, h=8),
        series("Lift vs control", "Relative difference of each arm from control, per "
               "metric.", "never red by itself; read it with the p-value.", "percentunit",
               prom(f"max by (experiment, metric, variant) (mlops_experiment_lift{{{T}}})",
                    "{{experiment}} {{metric}} {{variant}}")),
        series("Always-valid p-value", "Sequential p-value of each arm against control; "
               "valid whenever it is read, so watching it does not inflate errors.",
               "below alpha (often 0.05) with a worse decision: the arm harms the metric.",
               "short",
               prom(f"min by (experiment, metric, variant) (mlops_experiment_p_value{{{T}}})",
                    "{{experiment}} {{metric}} {{variant}}")),
        prom_table("Decisions", "1: the arm is better, -1: worse, 0: undecided yet "
                   "(direction-aware per metric).", "-1 on a guardrail: stop the experiment.",
                   prom(f"max by (experiment, metric, variant) (mlops_experiment_decision"
                        f"{{{T}}})", instant=True)),
        sql_table("Means with intervals (Postgres)", "Per metric and arm: mean of the arm "
                  "and of control, the lift with its always-valid interval, the p-value and "
                  "the decision, as the processor last wrote them.",
                  "decision treatment_worse: the arm harms this metric.",
                  "SELECT e.name AS experiment, e.function_name AS function, e.status,"
                  " m.key AS metric, a.key AS arm,"
                  " (a.value->'treatment'->>'mean')::float8 AS arm_mean,"
                  " (a.value->'treatment'->>'n')::int AS arm_n,"
                  " (a.value->'control'->>'mean')::float8 AS control_mean,"
                  " (a.value->'control'->>'n')::int AS control_n,"
                  " (a.value->>'lift')::float8 AS lift,"
                  " (a.value->'lift_ci'->>0)::float8 AS lift_low,"
                  " (a.value->'lift_ci'->>1)::float8 AS lift_high,"
                  " (a.value->>'p_value')::float8 AS p_value, a.value->>'decision' AS decision"
                  " FROM mlops.experiments e,"
                  " jsonb_each(coalesce(e.results->'metrics', '{}'::jsonb)) m,"
                  " jsonb_each(m.value) a"
                  f" WHERE {SQL_TF} ORDER BY e.updated_at DESC, 1, 4, 5 LIMIT 200"),
    ):
        d = d.with_panel(panel)
    return d


NO_DEPLOYMENTS = ("mlops_deployment_* series exist while a deployment does; the proof's "
                  "simulator runs none")


def deployment_metric(expr: str) -> str:
    return maybe_empty(expr, NO_DEPLOYMENTS)


def deployments() -> dash.Dashboard:
    d = base("mlops-deployments", "stream-mlops / Deployments",
             "Blue/green deployments: traffic share of the new version over time, the "
             "gate's evidence per metric against its exported thresholds, rollbacks, and "
             "the history from Postgres.")
    panel: cogbuilder.Builder[model.Panel]
    for panel in (
        series("Traffic share by slot", "Share of the function's traffic sent to each slot "
               "and version.", "a share dropping to 0 after a step: the gate rolled back; "
               "read the history below.", "percentunit",
               prom(deployment_metric("max by (function, slot, version) "
                                      f"(mlops_deployment_traffic_ratio{{{TF}}})"),
                    "{{function}} {{slot}} {{version}}"), stack=True),
        series("Gate p-values", "One-sided always-valid p-value that the new version harms "
               "each metric, compared with the live slot on the same traffic; dashed red: "
               "the gate's alpha (mlops_deployment_gate_alpha).",
               "at or below the dashed line: harm established, the deployment rolls back.",
               "short",
               prom(deployment_metric("min by (function, metric) "
                                      f"(mlops_deployment_gate_p_value{{{TF}}})"),
                    "{{function}} {{metric}}"),
               prom(deployment_metric("min by (function, metric) "
                                      f"(mlops_deployment_gate_alpha{{{TF}}})"),
                    "{{function}} {{metric}}", "T")),
        series("Samples per slot", "Requests the gate has counted on each slot in this "
               "step; dashed: the minimum before it may step on.", "a slot far below the "
               "dashed line for long: too little traffic, the deployment holds (it never "
               "promotes on no evidence).", "short",
               prom(deployment_metric("sum by (function, slot) "
                                      f"(mlops_deployment_samples{{{TF}}})"),
                    "{{function}} {{slot}}"),
               prom(deployment_metric("max by (function) "
                                      f"(mlops_deployment_min_samples{{{TF}}})"),
                    "{{function}}", "T")),
        big("Rollbacks (24 h)", "Deployments rolled back in the last 24 hours.",
            "read the reason in the history below before deploying again.", "short",
            prom(deployment_metric("sum(increase(mlops_deployment_rollbacks_total"
                                   f"{{{TF}}}[24h]))")),
            steps=_steps((None, "green"), (1, "red")), w=6, h=8),
        big("Deployment alerts", "Open deployment alerts (failed deployment, health check, "
            "rollback).", "read the alert in the Alerts dashboard and the history below.",
            "short", prom(deployment_metric(
                f"sum(mlops_deployment_alert_active{{{TF}}})")),
            steps=_steps((None, "green"), (1, "red")), w=6, h=8),
        prom_table("Status", "The status each function's latest deployment is in.",
                   "rolled_back or failed: read the reason below.",
                   prom(deployment_metric("max by (function, status) "
                                          f"(mlops_deployment_status{{{TF}}}) == 1"),
                        instant=True)),
        sql_table("History and rollbacks (Postgres)", "Every deployment: version, slot, "
                  "status, traffic share, the reason of its last transition, and when it was "
                  "promoted or rolled back.", "status rolled_back or failed: the reason says "
                  "which metric and by how much.",
                  "SELECT created_at, tenant_id AS tenant, function_name AS function, version,"
                  " slot, status, traffic_percent, reason, created_by, promoted_at,"
                  " rolled_back_at FROM mlops.deployments"
                  f" WHERE {SQL_TF} AND $__timeFilter(created_at)"
                  " ORDER BY created_at DESC LIMIT 200"),
    ):
        d = d.with_panel(panel)
    return d


ALERT_COLUMNS = ("id, tenant_id AS tenant, severity, alert_type AS type, function_name AS"
                 " function, model, title, state, first_seen, last_seen, acknowledged_by,"
                 " acknowledged_at, resolved_at")


def alerts() -> dash.Dashboard:
    d = base("mlops-alerts", "stream-mlops / Alerts",
             "Open and recent alerts with their acknowledgement state, from Postgres, and "
             "what Prometheus fires.")
    panel: cogbuilder.Builder[model.Panel]
    for panel in (
        big("Open alerts", "Alert episodes not resolved (firing or acknowledged) of the "
            "processor's own rules.", "someone must look: acknowledge in the CLI "
            "(stream-mlops alerts ack ID) once you do.", "short",
            prom(f"sum(mlops_alert_active{{{TF}}}) or vector(0)"),
            steps=_steps((None, "green"), (1, "red")), w=6),
        series("Firing by rule", "Open alert episodes by rule and severity.",
               "a rule stays firing: the table below says since when and what.", "short",
               prom(maybe_empty(f"sum by (rule, severity) (mlops_alert_active{{{TF}}})",
                                "no alert is open unless a scenario made one fire"),
                    "{{rule}} {{severity}}"), w=18),
        sql_table("Open alerts (Postgres)", "Firing or acknowledged episodes, critical "
                  "first, with who acknowledged them.", "state firing with no "
                  "acknowledged_by: nobody has looked yet.",
                  f"SELECT {ALERT_COLUMNS} FROM mlops.alerts WHERE state <> 'resolved'"
                  f" AND {SQL_T} AND coalesce(function_name, '') ~ '^${{function:regex}}$'"
                  " ORDER BY severity = 'critical' DESC, last_seen DESC LIMIT 200"),
        sql_table("Recent alerts (Postgres)", "Every episode seen in the time range, "
                  "resolved ones included.", "never red; the history of what fired.",
                  f"SELECT {ALERT_COLUMNS} FROM mlops.alerts WHERE $__timeFilter(last_seen)"
                  f" AND {SQL_T} AND coalesce(function_name, '') ~ '^${{function:regex}}$'"
                  " ORDER BY last_seen DESC LIMIT 500"),
    ):
        d = d.with_panel(panel)
    return d


DASHBOARDS: dict[str, Callable[[], dash.Dashboard]] = {
    "overview": overview, "performance": performance, "costs": costs, "drift": drift,
    "experiments": experiments, "deployments": deployments, "alerts": alerts,
}


def render(name: str) -> str:
    """The JSON of dashboard ``name``, with panel ids numbered in order."""
    built = DASHBOARDS[name]().build()
    for i, panel in enumerate(built.panels or [], start=1):
        panel.id_val = i
    doc: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(built))
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """File name -> JSON of every dashboard."""
    return {f"{name}.json": render(name) for name in DASHBOARDS}


def allowed_empty() -> dict[str, str]:
    """:data:`MAY_BE_EMPTY`, filled by building every dashboard."""
    generate()
    return dict(MAY_BE_EMPTY)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--out", type=Path, default=OUT_DIR, help=f"directory ({OUT_DIR})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in generate().items():
        (args.out / name).write_text(text)
        print(f"wrote {args.out / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
