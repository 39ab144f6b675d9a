"""RoboDepth KITTI-C scoring: DEE, CE / mCE against a reference model, RR / mRR against the clean score.

Definitions (RoboDepth, Kong et al., NeurIPS 2023 D&B; github.com/ldkong1205/RoboDepth README):

* DEE (their DEE_2, the benchmark's main indicator) = (AbsRel - delta1 + 1) / 2, with AbsRel the mean
  absolute relative error and delta1 the fraction (in [0, 1], not percent) of pixels with
  max(gt/pred, pred/gt) < 1.25. Lower is better; 0 is a perfect prediction.
* CE_i = sum_l DEE_{i,l}(model) / sum_l DEE_{i,l}(reference) over the severities l = 1..5 of corruption i.
  mCE = mean_i CE_i. The reference is RoboDepth's MonoDepth2-R18 (mCE = 100 %) unless another is given.
* RR_i = sum_l (1 - DEE_{i,l}) / (5 * (1 - DEE_clean)), the model against its own clean score.
  mRR = mean_i RR_i.

RoboDepth reports CE/mCE/RR/mRR in percent; the functions here return fractions (1.0 = 100 %) and the
Markdown table prints percent. Checked against RoboDepth's published numbers: from its per-corruption
DEE values, MonoDepth2-R18's mRR comes out 84.46 % and MonoViT's mCE / mRR 79.33 % / 89.15 %, as published.

The corruption images come from :mod:`robustdepth.evaluation.corruptions`; :func:`run_corruption_benchmark`
runs a model over them with a caller-supplied per-frame evaluation (so the depth protocol, e.g. KITTI
Eigen with median scaling, stays the caller's choice), :func:`score_results` turns its output into scores.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robustdepth.evaluation.corruptions import CORRUPTIONS, SEVERITIES, check_corruption, corrupt

REQUIRED_METRICS = ("abs_rel", "a1")
SHIPPED_REFERENCES: dict[str, str] = {"monodepth2_r18": "robodepth_reference.json"}
"""Named references shipped with the package (file names next to this module)."""

DEE_DEFINITION = "DEE2 = (AbsRel - delta1 + 1) / 2 (delta1 as a fraction in [0, 1]); lower is better"

Metrics = Mapping[str, float]
SeverityMetrics = Mapping[int, Metrics]


# ----------------------------------------------------------------------------------------------------
# The maths
# ----------------------------------------------------------------------------------------------------


def dee(abs_rel: float, a1: float) -> float:
    """RoboDepth's depth estimation error DEE_2 = (AbsRel - delta1 + 1) / 2.

    ``abs_rel`` is the mean absolute relative error (a fraction, e.g. 0.115); ``a1`` is delta1 < 1.25
    as a fraction in [0, 1] (e.g. 0.877, not 87.7 %)."""
    abs_rel, a1 = float(abs_rel), float(a1)
    if not (math.isfinite(abs_rel) and abs_rel >= 0.0):
        raise ValueError(f"abs_rel must be a finite number >= 0, got {abs_rel}")
    if not (math.isfinite(a1) and 0.0 <= a1 <= 1.0):
        raise ValueError(f"a1 (delta1) must be a fraction in [0, 1], got {a1} (a percentage? divide by 100)")
    return (abs_rel - a1 + 1.0) / 2.0


def _by_severity(values: Mapping[Any, float], what: str) -> dict[int, float]:
    """Normalise a severity -> value mapping (keys may be ints or JSON strings) and check it."""
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"{what} must be a non-empty mapping severity -> value, got {values!r}")
    out: dict[int, float] = {}
    for key, value in values.items():
        severity = _severity_key(key, what)
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{what} at severity {severity} is not finite: {value}")
        out[severity] = value
    return dict(sorted(out.items()))


def _severity_key(key: Any, what: str) -> int:
    try:
        severity = int(key)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: severity key {key!r} is not an integer 1-5") from None
    if severity not in SEVERITIES or str(severity) != str(key).strip():
        raise ValueError(f"{what}: severity key {key!r} is not an integer 1-5")
    return severity


def corruption_error(
    model_dee_by_sev: Mapping[Any, float], reference_dee_by_sev: Mapping[Any, float]
) -> float:
    """CE = sum over severities of the model's DEE / the same sum for the reference (a fraction; x100 for %).

    Both mappings must cover the same severities."""
    model = _by_severity(model_dee_by_sev, "model DEE")
    reference = _by_severity(reference_dee_by_sev, "reference DEE")
    if model.keys() != reference.keys():
        raise ValueError(
            f"model and reference DEE must cover the same severities, got {list(model)} and {list(reference)}"
        )
    reference_sum = sum(reference.values())
    if reference_sum <= 0.0:
        raise ValueError(f"reference DEE sums to {reference_sum}; CE is undefined for a perfect reference")
    return sum(model.values()) / reference_sum


def resilience_rate(dee_by_sev: Mapping[Any, float], clean_dee: float) -> float:
    """RR = sum over severities of (1 - DEE) / (n_severities * (1 - clean DEE)) (a fraction; x100 for %).

    RoboDepth always uses its 5 severities, so n_severities = 5 there."""
    values = _by_severity(dee_by_sev, "DEE")
    clean_dee = float(clean_dee)
    if not (math.isfinite(clean_dee) and clean_dee < 1.0):
        raise ValueError(f"clean DEE must be finite and < 1 for RR, got {clean_dee}")
    return sum(1.0 - v for v in values.values()) / (len(values) * (1.0 - clean_dee))


def _mean_over_corruptions(values: Mapping[str, float], what: str) -> float:
    if not isinstance(values, Mapping) or not values:
        raise ValueError(f"{what} needs a non-empty mapping corruption -> value")
    for name, value in values.items():
        check_corruption(name, 1)
        if not math.isfinite(float(value)):
            raise ValueError(f"{what}: value for {name!r} is not finite: {value}")
    return float(np.mean([float(v) for v in values.values()]))


def mce(ce_by_corruption: Mapping[str, float]) -> float:
    """mCE = mean of CE over the corruptions given (RoboDepth: all 18)."""
    return _mean_over_corruptions(ce_by_corruption, "mCE")


def mrr(rr_by_corruption: Mapping[str, float]) -> float:
    """mRR = mean of RR over the corruptions given (RoboDepth: all 18)."""
    return _mean_over_corruptions(rr_by_corruption, "mRR")


def _metrics_dee(metrics: Metrics, where: str) -> float:
    missing = [k for k in REQUIRED_METRICS if k not in metrics]
    if missing:
        raise KeyError(f"{where}: metrics lack {missing}; have {sorted(metrics)}")
    try:
        return dee(metrics["abs_rel"], metrics["a1"])
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


# ----------------------------------------------------------------------------------------------------
# References
# ----------------------------------------------------------------------------------------------------


def _normalise_reference(data: Mapping[str, Any], name: str, where: str) -> dict[str, Any]:
    """Reference format: {"name", "clean": metrics, "corruptions": {corruption: {int severity: metrics}}}."""
    if "clean" not in data or "corruptions" not in data:
        raise ValueError(f"{where}: a reference needs 'clean' and 'corruptions' entries, has {sorted(data)}")
    clean = dict(data["clean"].get("metrics", data["clean"]))
    _metrics_dee(clean, f"{where} clean")
    corruptions: dict[str, dict[int, dict[str, float]]] = {}
    for corruption, entry in data["corruptions"].items():
        check_corruption(corruption, 1)
        per_severity = entry.get("metrics", entry)
        corruptions[corruption] = {}
        for key, metrics in per_severity.items():
            severity = _severity_key(key, f"{where} {corruption}")
            _metrics_dee(metrics, f"{where} {corruption} severity {severity}")
            corruptions[corruption][severity] = {k: float(v) for k, v in metrics.items()}
    out = {"name": str(data.get("name") or name), "clean": clean, "corruptions": corruptions}
    if "source" in data:
        out["source"] = data["source"]
    if "published" in data:
        out["published"] = data["published"]
    return out


def reference_from_results(path: str | Path) -> dict[str, Any]:
    """Use a results JSON written by :func:`save_scores` (or any file in the shipped reference format)
    as the reference for CE, e.g. to compare against one's own baseline checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference results file not found: {path}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"reference results file {path} is not valid JSON: {err}") from None
    return _normalise_reference(data, name=path.stem, where=str(path))


def load_reference(name: str = "monodepth2_r18") -> dict[str, Any]:
    """Load a named shipped reference (``"monodepth2_r18"``: RoboDepth's published MonoDepth2-R18
    KITTI-C numbers) or, given a path to a JSON file, that file via :func:`reference_from_results`."""
    if name in SHIPPED_REFERENCES:
        return reference_from_results(Path(__file__).with_name(SHIPPED_REFERENCES[name]))
    if Path(name).suffix == ".json" or Path(name).is_file():
        return reference_from_results(name)
    raise ValueError(
        f"unknown reference {name!r}; use one of {sorted(SHIPPED_REFERENCES)} or a results JSON path"
    )


# ----------------------------------------------------------------------------------------------------
# Scoring a model's results
# ----------------------------------------------------------------------------------------------------


def score_results(
    per_corruption: Mapping[str, Mapping[Any, Metrics]],
    clean: Metrics,
    reference: Mapping[str, Any],
    name: str = "model",
) -> dict[str, Any]:
    """Score a model's per-corruption, per-severity mean metrics against ``reference``.

    ``per_corruption[corruption][severity]`` and ``clean`` are metric dicts with at least ``abs_rel``
    and ``a1`` (delta1 as a fraction), e.g. the ``per_corruption`` / ``clean`` of
    :func:`run_corruption_benchmark`. ``reference`` comes from :func:`load_reference`.

    Returns a JSON-ready dict: per corruption its metrics, DEE per severity, mean DEE, the
    reference's DEE, CE and RR; overall mCE, mRR (fractions) and mean DEE. A corruption the
    reference lacks gets CE None and is listed in ``ce_skipped`` (mCE is then over the rest);
    ``complete`` says whether all 18 corruptions x 5 severities were scored, i.e. whether mCE/mRR
    are comparable with RoboDepth's tables.
    """
    reference = _normalise_reference(
        reference, name=str(reference.get("name", "reference")), where="reference"
    )
    if not per_corruption:
        raise ValueError("per_corruption is empty: nothing to score")
    unknown = [c for c in per_corruption if c not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"unknown corruption(s) {unknown}; expected names from {', '.join(CORRUPTIONS)}")
    clean = {k: float(v) for k, v in clean.items()}
    clean_dee = _metrics_dee(clean, "clean")
    reference_clean_dee = _metrics_dee(reference["clean"], "reference clean")

    scored: dict[str, dict[str, Any]] = {}
    ce_by_corruption: dict[str, float] = {}
    skipped: list[str] = []
    for corruption in (c for c in CORRUPTIONS if c in per_corruption):
        metrics = {
            _severity_key(s, corruption): {k: float(v) for k, v in m.items()}
            for s, m in per_corruption[corruption].items()
        }
        if not metrics:
            raise ValueError(f"corruption {corruption!r} has no severities")
        metrics = dict(sorted(metrics.items()))
        dee_by_sev = {s: _metrics_dee(m, f"{corruption} severity {s}") for s, m in metrics.items()}
        entry: dict[str, Any] = {
            "metrics": metrics,
            "dee": dee_by_sev,
            "dee_mean": float(np.mean(list(dee_by_sev.values()))),
            "rr": resilience_rate(dee_by_sev, clean_dee),
            "reference_dee": None,
            "ce": None,
        }
        reference_metrics = reference["corruptions"].get(corruption)
        if reference_metrics is None:
            skipped.append(corruption)
        else:
            missing = [s for s in dee_by_sev if s not in reference_metrics]
            if missing:
                raise ValueError(
                    f"reference {reference['name']!r} lacks {corruption!r} severities {missing} needed for CE"
                )
            entry["reference_dee"] = {
                s: _metrics_dee(reference_metrics[s], f"reference {corruption} severity {s}")
                for s in dee_by_sev
            }
            entry["ce"] = corruption_error(dee_by_sev, entry["reference_dee"])
            ce_by_corruption[corruption] = entry["ce"]
        scored[corruption] = entry

    complete = set(scored) == set(CORRUPTIONS) and all(tuple(e["dee"]) == SEVERITIES for e in scored.values())
    return {
        "name": name,
        "dee_definition": DEE_DEFINITION,
        "units": "ce, mce, rr, mrr are fractions (x100 for RoboDepth's percent); metrics as given",
        "reference": {"name": reference["name"], "clean_dee": reference_clean_dee},
        "clean": {"metrics": clean, "dee": clean_dee},
        "corruptions": scored,
        "mce": mce(ce_by_corruption) if ce_by_corruption else None,
        "mrr": mrr({c: e["rr"] for c, e in scored.items()}),
        "mean_dee": float(np.mean([e["dee_mean"] for e in scored.values()])),
        "ce_skipped": skipped,
        "complete": complete,
    }


def save_scores(scores: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``scores`` as JSON (severity keys become strings; :func:`reference_from_results` reads
    it back)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(scores, indent=1))
    return path


# ----------------------------------------------------------------------------------------------------
# Reports
# ----------------------------------------------------------------------------------------------------


def _fmt(value: float | None, scale: float = 1.0, digits: int = 3) -> str:
    return "–" if value is None else f"{value * scale:.{digits}f}"


def format_corruption_table(scores: Mapping[str, Any]) -> str:
    """Markdown table of a :func:`score_results` dict: DEE per severity, mean DEE, the reference's mean
    DEE, CE and RR (percent) per corruption, with an mCE / mRR summary line."""
    corruptions = scores["corruptions"]
    severities = sorted({int(s) for e in corruptions.values() for s in e["dee"]})
    reference = scores["reference"]
    lines = [
        f"**{scores.get('name', 'model')}** vs reference **{reference['name']}**: "
        f"mCE = {_fmt(scores['mce'], 100, 2)} %, mRR = {_fmt(scores['mrr'], 100, 2)} %, "
        f"clean DEE = {scores['clean']['dee']:.3f} (reference {reference['clean_dee']:.3f}), "
        f"mean corrupted DEE = {scores['mean_dee']:.3f}"
        + ("" if scores.get("complete") else " — partial run: not comparable with RoboDepth's 18x5 tables"),
        "",
        "| Corruption | "
        + " | ".join(f"DEE s{s}" for s in severities)
        + " | mean DEE | ref. mean DEE | CE (%) | RR (%) |",
        "|:--|" + "--:|" * (len(severities) + 4),
    ]
    for corruption, entry in corruptions.items():
        per_sev = _int_keys(entry["dee"])
        ref = entry.get("reference_dee")
        ref_mean = None if not ref else float(np.mean(list(ref.values())))
        cells = [_fmt(per_sev.get(s)) for s in severities]
        cells += [
            _fmt(entry["dee_mean"]),
            _fmt(ref_mean),
            _fmt(entry["ce"], 100, 2),
            _fmt(entry["rr"], 100, 2),
        ]
        lines.append(f"| {corruption} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _int_keys(by_severity: Mapping[Any, float]) -> dict[int, float]:
    """Severity-keyed values sorted by severity, accepting the string keys of a reloaded JSON."""
    return {int(s): float(v) for s, v in sorted(by_severity.items(), key=lambda item: int(item[0]))}


def plot_dee_vs_severity(scores: Mapping[str, Any], out_png: str | Path) -> Path:
    """One panel per corruption: the model's DEE against severity, the reference's (dashed) and the
    model's clean DEE (dotted). Rendered with matplotlib's Agg canvas (no display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    corruptions = scores["corruptions"]
    if not corruptions:
        raise ValueError("scores contain no corruptions to plot")
    ncols = min(6, len(corruptions))
    nrows = math.ceil(len(corruptions) / ncols)
    figure = Figure(figsize=(2.6 * ncols, 2.2 * nrows + 0.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = np.atleast_1d(figure.subplots(nrows, ncols, sharey=True, squeeze=False)).ravel()
    top = max(
        [scores["clean"]["dee"]]
        + [v for e in corruptions.values() for v in e["dee"].values()]
        + [v for e in corruptions.values() for v in (e.get("reference_dee") or {}).values()]
    )
    for ax, (corruption, entry) in zip(axes, corruptions.items()):
        ref = _int_keys(entry.get("reference_dee") or {})
        if ref:  # drawn first so that the model's line stays visible where they coincide
            ax.plot(list(ref), list(ref.values()), "s--", color="tab:gray", label=scores["reference"]["name"])
        model = _int_keys(entry["dee"])
        ax.plot(list(model), list(model.values()), "o-", color="tab:blue", label=scores.get("name", "model"))
        ax.axhline(scores["clean"]["dee"], color="tab:green", linestyle=":", label="clean")
        ax.set_title(corruption, fontsize=9)
        ax.set_xticks(list(SEVERITIES))
        ax.set_ylim(0.0, top * 1.1 + 1e-6)
        ax.grid(alpha=0.3)
    for ax in axes[len(corruptions) :]:
        ax.set_visible(False)
    axes[0].set_ylabel("DEE")
    axes[0].legend(fontsize=7, loc="upper left")
    figure.supxlabel("severity")
    figure.suptitle(f"RoboDepth corruptions: DEE vs severity ({scores.get('name', 'model')})")
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png, dpi=100)
    return out_png


# ----------------------------------------------------------------------------------------------------
# Running a model over the corruptions
# ----------------------------------------------------------------------------------------------------


class _MeanMetrics:
    """Running mean of per-frame metric dicts (every frame must report the same metric names)."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, metrics: Metrics, where: str) -> None:
        if self.count and set(metrics) != set(self.sums):
            raise ValueError(
                f"{where}: evaluate_frame returned metrics {sorted(metrics)}, earlier {sorted(self.sums)}"
            )
        for key, value in metrics.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1

    def mean(self) -> dict[str, float]:
        return {k: v / self.count for k, v in self.sums.items()}


def _frame_seed(seed: int, frame_index: int, corruption: str, severity: int) -> int:
    """Independent, reproducible corruption seed per (run seed, frame, corruption, severity)."""
    entropy = [seed, frame_index, CORRUPTIONS.index(corruption), severity]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _predict_and_evaluate(
    predict: Callable[[np.ndarray], np.ndarray],
    evaluate_frame: Callable[[np.ndarray, np.ndarray], Metrics],
    image: np.ndarray,
    gt: np.ndarray,
    where: str,
) -> dict[str, float]:
    pred = np.asarray(predict(image))
    if pred.ndim != 2:
        raise ValueError(f"{where}: predict must return an h x w depth map, got shape {pred.shape}")
    if not np.all(np.isfinite(pred)):
        raise ValueError(f"{where}: predict returned non-finite depth values")
    metrics = evaluate_frame(gt, pred)
    if not isinstance(metrics, Mapping):
        raise TypeError(
            f"{where}: evaluate_frame must return a dict of metrics, got {type(metrics).__name__}"
        )
    metrics = {k: float(v) for k, v in metrics.items()}
    _metrics_dee(metrics, where)  # checks abs_rel / a1 are there and a1 is a fraction
    return metrics


def run_corruption_benchmark(
    predict: Callable[[np.ndarray], np.ndarray],
    frames: Iterable[tuple[np.ndarray, np.ndarray]],
    evaluate_frame: Callable[[np.ndarray, np.ndarray], Metrics],
    corruptions: Iterable[str] = CORRUPTIONS,
    severities: Iterable[int] = SEVERITIES,
    progress: bool = True,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate ``predict`` on clean and corrupted copies of ``frames``.

    ``frames`` yields (H x W x 3 uint8 RGB image, ground-truth depth) pairs; for KITTI-C pass images
    resized to 640x192 (``corruptions.resize_for_kitti_c``) as RoboDepth does. Each image is
    corrupted with every corruption x severity (seeded per frame/corruption/severity from ``seed``),
    ``predict(image) -> h x w depth`` runs on it and ``evaluate_frame(gt, pred) -> {metric: value}``
    (must include ``abs_rel`` and ``a1`` as a fraction) scores it; metrics are averaged over frames.

    Returns {"clean": metrics, "per_corruption": {corruption: {severity: metrics}}, "num_frames",
    "corruptions", "severities", "seed"}; feed ``clean`` / ``per_corruption`` to :func:`score_results`.
    """
    from tqdm import tqdm

    corruptions = tuple(corruptions)
    severities = tuple(severities)
    if not corruptions or not severities:
        raise ValueError("corruptions and severities must not be empty")
    for corruption in corruptions:
        for severity in severities:
            check_corruption(corruption, severity)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")

    total = len(frames) * (1 + len(corruptions) * len(severities)) if hasattr(frames, "__len__") else None
    clean = _MeanMetrics()
    corrupted = {c: {s: _MeanMetrics() for s in severities} for c in corruptions}
    with tqdm(total=total, disable=not progress, desc="RoboDepth corruptions", unit="img") as bar:
        for index, (image, gt) in enumerate(frames):
            where = f"frame {index}"
            clean.add(_predict_and_evaluate(predict, evaluate_frame, image, gt, f"{where} (clean)"), where)
            bar.update(1)
            for corruption in corruptions:
                for severity in severities:
                    label = f"{where} ({corruption}, severity {severity})"
                    image_c = corrupt(
                        image, corruption, severity, seed=_frame_seed(seed, index, corruption, severity)
                    )
                    corrupted[corruption][severity].add(
                        _predict_and_evaluate(predict, evaluate_frame, image_c, gt, label), label
                    )
                    bar.update(1)
    if clean.count == 0:
        raise ValueError("frames yielded no (image, gt_depth) pairs")
    return {
        "clean": clean.mean(),
        "per_corruption": {
            c: {s: acc.mean() for s, acc in by_sev.items()} for c, by_sev in corrupted.items()
        },
        "num_frames": clean.count,
        "corruptions": list(corruptions),
        "severities": list(severities),
        "seed": seed,
    }
