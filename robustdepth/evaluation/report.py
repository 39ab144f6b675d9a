"""Tables and plots of evaluation summaries (conditions as rows, metrics as columns)."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from robustdepth.evaluation.evaluate import condition_names
from robustdepth.evaluation.metrics import METRIC_NAMES

ADVERSE_CONDITIONS = ("night", "rain", "fog", "snow")
ADVERSE_ROW = "adverse mean"


def adverse_mean(summary: Mapping[str, Any], adverse: Sequence[str] = ADVERSE_CONDITIONS) -> dict[str, float]:
    """Mean of each metric over the adverse conditions present in ``summary`` (mean of condition means).

    Conditions are matched by exact name (label nuScenes-style data with groups such as md4all's ``"night"``
    and ``"rain"`` to use the defaults).
    """
    present = [name for name in adverse if name in condition_names(summary)]
    if not present:
        raise ValueError(
            f"none of the adverse conditions {tuple(adverse)} is in the summary; "
            f"it has {condition_names(summary)}"
        )
    metrics = [m for m in METRIC_NAMES if all(m in summary[name] for name in present)]
    return {metric: float(np.mean([summary[name][metric] for name in present])) for metric in metrics}


def _rows(
    summary: Mapping[str, Any],
    metrics: Sequence[str],
    conditions: Sequence[str] | None,
    adverse: Sequence[str] | None,
) -> list[tuple[str, list[float], str]]:
    """(row name, metric values, count text) per table row; validates names against the summary."""
    available = condition_names(summary)
    chosen = list(conditions) if conditions is not None else available
    unknown = [c for c in chosen if c not in available]
    if unknown:
        raise KeyError(f"condition(s) {unknown} not in the summary; available: {available}")
    for metric in metrics:
        missing = [c for c in chosen if metric not in summary[c]]
        if missing:
            raise KeyError(
                f"metric {metric!r} missing for condition(s) {missing}; known: {list(METRIC_NAMES)}"
            )
    counts = summary.get("counts", {})
    rows = [(c, [float(summary[c][m]) for m in metrics], str(counts.get(c, ""))) for c in chosen]
    if adverse is not None:
        mean = adverse_mean(summary, adverse)
        rows.append((ADVERSE_ROW, [mean[m] for m in metrics], ""))
    return rows


def format_table(
    summary: Mapping[str, Any],
    metrics: Sequence[str] = METRIC_NAMES,
    conditions: Sequence[str] | None = None,
    adverse: Sequence[str] | None = None,
    digits: int = 4,
) -> str:
    """Markdown table: one row per condition (default: all, in summary order), a column per metric and ``n``.

    With ``adverse`` (e.g. :data:`ADVERSE_CONDITIONS`) an ``adverse mean`` row is appended.
    """
    rows = _rows(summary, metrics, conditions, adverse)
    header = "| condition | " + " | ".join(metrics) + " | n |"
    rule = "|---|" + "---:|" * (len(metrics) + 1)
    lines = [header, rule]
    for name, values, count in rows:
        lines.append(f"| {name} | " + " | ".join(f"{v:.{digits}f}" for v in values) + f" | {count} |")
    return "\n".join(lines)


def print_table(
    summary: Mapping[str, Any],
    metrics: Sequence[str] = METRIC_NAMES,
    conditions: Sequence[str] | None = None,
    adverse: Sequence[str] | None = None,
    digits: int = 4,
    file: TextIO | None = None,
) -> None:
    """Print an aligned plain-text table (for the CLI), plus MD2's scale-ratio line when present."""
    out = file if file is not None else sys.stdout
    rows = _rows(summary, metrics, conditions, adverse)
    name_width = max(len("condition"), *(len(name) for name, _, _ in rows))
    col = max(digits + 4, *(len(m) for m in metrics))
    header = "  ".join(f"{m:>{col}}" for m in metrics)
    print(f"{'condition':<{name_width}}  {header}  {'n':>6}", file=out)
    for name, values, count in rows:
        cells = "  ".join(f"{v:>{col}.{digits}f}" for v in values)
        print(f"{name:<{name_width}}  {cells}  {count:>6}", file=out)
    ratio = summary.get("scale_ratio", {}).get("all")
    if ratio is not None:
        print(f"scaling ratios | med: {ratio['median']:0.3f} | std: {ratio['std']:0.3f}", file=out)


def plot_metric_bars(
    results_by_method: Mapping[str, Mapping[str, Any]],
    metric: str,
    out_png: str | Path,
    conditions: Sequence[str] | None = None,
) -> Path:
    """Grouped bar chart of ``metric``: one group per condition, one bar per method; saved as a PNG.

    Uses matplotlib's object API with the Agg canvas, so no display or global backend is touched.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not results_by_method:
        raise ValueError("plot_metric_bars: results_by_method is empty")
    if metric not in METRIC_NAMES:
        raise KeyError(f"unknown metric {metric!r}; valid: {list(METRIC_NAMES)}")
    if conditions is None:
        conditions = []
        for summary in results_by_method.values():
            conditions += [c for c in condition_names(summary) if c not in conditions]
    conditions = list(conditions)
    if not conditions:
        raise ValueError("plot_metric_bars: no conditions to plot")

    methods = list(results_by_method)
    x = np.arange(len(conditions), dtype=np.float64)
    width = 0.8 / len(methods)
    # wide enough for the bars, capped so a long method list stays readable; legend beside the axes
    fig = Figure(figsize=(min(11.0, max(4.0, 0.3 * len(conditions) * len(methods) + 2.5)), 3.8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, method in enumerate(methods):
        summary = results_by_method[method]
        heights = [float(summary[c][metric]) if c in summary else np.nan for c in conditions]
        ax.bar(x + (i - (len(methods) - 1) / 2) * width, heights, width, label=method)
    ax.set_xticks(x)
    ax.set_xticklabels(conditions)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per condition")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out
