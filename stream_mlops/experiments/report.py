"""An experiment's live results as text for a terminal (``stream-mlops experiment status``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stream_mlops.experiments.monitor import format_value

if TYPE_CHECKING:
    from stream_mlops.experiments.store import Experiment


def _pct(v: Any) -> str:
    return "-" if v is None else f"{v:+.1%}"


def render_experiment(e: Experiment) -> str:
    r = e.results
    lines = [f"experiment {e.name} (tenant {e.tenant_id}, function {e.function_name}): "
             f"{e.status}, decision {e.decision}",
             "  variants: " + ", ".join(
                 f"{v.name} {v.weight:g}" + (f" ({v.model})" if v.model else "")
                 for v in e.variants) + f"; control {e.variants[0].name}",
             f"  alpha {e.alpha:g}, at least {e.min_samples} per arm"
             + (f", min effect {e.min_effect:g}" if e.min_effect else "")
             + (", stops by itself when decided" if e.auto_stop else "")
             + (f"; latency, cost and confidence adjusted for {e.covariate} (CUPED)"
                if e.covariate else "")]
    if not r.get("metrics"):
        lines.append("  no results yet (the processor writes them every few seconds while it "
                     "runs)")
        return "\n".join(lines)
    for metric, by_arm in r["metrics"].items():
        role = "primary" if metric == e.primary_metric else "guardrail"
        for arm, s in by_arm.items():
            ci = s.get("difference_ci")
            lift_ci = s.get("lift_ci")
            lines.append(
                f"  {role} {metric}: {arm} {format_value(s['treatment']['mean'], metric)} "
                f"(n={s['treatment']['n']}) vs {e.variants[0].name} "
                f"{format_value(s['control']['mean'], metric)} (n={s['control']['n']}); lift "
                f"{_pct(s.get('lift'))}"
                + (f" [{_pct(lift_ci[0])}, {_pct(lift_ci[1])}]" if lift_ci else "")
                + (f", difference CI [{format_value(ci[0], metric)}, {format_value(ci[1], metric)}]"
                   if ci and metric != "error_rate" else
                   f", difference CI [{ci[0]:+.2%}, {ci[1]:+.2%}]" if ci else "")
                + f"; p = {s['p_value']:.4f} (always valid) -> {s['decision']}"
                + (f"; {s['variance_reduction']:.0%} of the variance explained by "
                   f"{e.covariate}" if s.get("variance_reduction") is not None else ""))
    srm = r.get("srm")
    if srm:
        shares = "/".join("-" if o is None else f"{o:.1%}" for o in srm["observed_shares"])
        lines.append(f"  sample ratio: {shares} observed over {sum(srm['counts'])} requests, "
                     f"p = {srm['p_value']:.3g}"
                     + (" -- MISMATCH: the split is broken, distrust these results"
                        if srm["mismatch"] else " (ok)"))
    if r.get("unknown_variant_rows"):
        lines.append(f"  {r['unknown_variant_rows']} request(s) named a variant this "
                     "experiment does not have")
    return "\n".join(lines)
