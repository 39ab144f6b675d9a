"""The method issues' claims as paired effects with intervals, from the method tables' finished runs.

    python benchmarks/method_effects.py --protocol benchmarks/protocol_v1.yaml

Each claim is a (method row, baseline row) pair of the run registry. Its seeds are the protocol's seed
(``runs_root/<key>``) and every registered ``<key>_seed<k>`` twin that has finished for BOTH rows; the
difference method − baseline in AbsRel per condition and on the adverse mean comes with a 95 % interval from
the paired two-stage bootstrap over those seeds and the test frames (``robustdepth/bench/stats.py``: same
seed, same frame; frame difficulty cancels), and a verdict: resolved better / resolved worse / unresolved.
Nothing trains here: a pair with a row not yet finished is listed as missing, with the row to run. Rows are
evaluated (and cached) on first use. Writes ``method_effects.{json,md}`` under ``--out``.

With two seeds the seed stage of the bootstrap has three distinct draws, so the interval is mostly the test
frames' sampling: a statement about these seeds and this test set. The per-seed paired differences are listed
beside it so that a reader sees whether the seeds agree.

Run it from the repository root: run folders and the world are found relative to the working directory
(runs/bench*, data/world), the same paths every table and ``robustdepth bench`` record and share.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from robustdepth.bench.protocol import (
    RUN_REGISTRY,
    BenchProtocol,
    frame_metrics,
    protocol_flag,
    protocol_label,
    row_dir,
    runs_root_for,
)
from robustdepth.bench.script import run_script
from robustdepth.bench.stats import ADVERSE_MEAN, CONDITIONS, compare
from robustdepth.training.stages import finished_checkpoint

REPO = Path(__file__).resolve().parents[1]

#: (method key, baseline key, issue, the question the pair answers)
CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("sec_monodepth2", "md2_deg_s5", "SEC-Depth", "SECL (S = 5) vs the same degraded inputs without it"),
    ("sec_positive_only", "md2_deg_s5", "SEC-Depth", "the positive term JS(A, P) alone vs no SECL"),
    ("sec_monodepth2", "sec_positive_only", "SEC-Depth", "what the negatives (past selves) add to JS(A, P)"),
    ("sec_frozen_queue", "sec_monodepth2", "SEC-Depth", "a queue frozen after the warm-up vs the refreshed one"),
    ("md2_deg_s5", "md2_continued", "SEC-Depth", "degraded inputs every 5th step vs clear continued training"),
    ("sec_monodepth2_s1", "md2_deg_s1", "SEC-Depth", "SECL with S = 1 vs the same inputs without it"),
    ("sec_monodepth2_s10", "md2_deg_s10", "SEC-Depth", "SECL with S = 10 vs the same inputs without it"),
    ("md4all_dd_sec", "md4all_dd", "SEC-Depth", "SECL on the md4all-DD host vs the host alone"),
    ("acdepth_ogd", "acdepth_ld", "ACDepth", "OGD with the teacher's prior vs L_d alone"),
    ("acdepth_ogd_oracle", "acdepth_ld", "ACDepth", "OGD with the oracle prior vs L_d alone"),
    ("acdepth_lc", "acdepth_ld", "ACDepth", "feature consistency L_c vs L_d alone"),
    ("acdepth", "md4all_dd", "ACDepth", "ACDepth (teacher prior) vs its paper baseline md4all-DD"),
    ("acdepth_oracle", "md4all_dd", "ACDepth", "ACDepth (oracle prior) vs md4all-DD"),
    ("syn2real_ra", "md4all_dd", "RoSAMDepth", "Syn2Real-RA vs md4all-DD"),
    ("rosam", "syn2real_ra", "RoSAMDepth", "RoSAMDepth (felzenszwalb masks) vs its baseline Syn2Real-RA"),
    ("rosam_world_masks", "syn2real_ra", "RoSAMDepth", "RoSAMDepth (coverage-matched oracle masks) vs Syn2Real-RA"),
    ("rosam_world_masks", "rosam", "RoSAMDepth", "oracle masks vs felzenszwalb masks"),
    ("rosam_ore", "syn2real_ra", "RoSAMDepth", "ORE alone vs Syn2Real-RA"),
    ("rosam_src", "syn2real_ra", "RoSAMDepth", "SRC alone vs Syn2Real-RA"),
    ("rosam_arom", "syn2real_ra", "RoSAMDepth", "AROM alone vs Syn2Real-RA"),
    ("rosam_arom_rgl", "syn2real_ra", "RoSAMDepth", "AROM + L_rgl vs Syn2Real-RA"),
    ("rosam_arom_rgl_ore", "syn2real_ra", "RoSAMDepth", "AROM + L_rgl + ORE vs Syn2Real-RA"),
)


def seed_runs(protocol: BenchProtocol, runs: Path, key: str) -> dict[int, Path]:
    """seed → finished checkpoint of row ``key``: the protocol's seed and every finished ``<key>_seed<k>``."""
    out: dict[int, Path] = {}
    if key in RUN_REGISTRY and (last := finished_checkpoint(row_dir(runs, key))) is not None:
        out[protocol.seed] = last
    prefix = f"{key}_seed"
    for twin in RUN_REGISTRY:
        is_twin = twin.startswith(prefix) and twin[len(prefix):].isdigit()
        if is_twin and (last := finished_checkpoint(row_dir(runs, twin))) is not None:
            out[int(twin[len(prefix):])] = last
    return out


def per_seed_differences(protocol: BenchProtocol, method: dict[int, Path], baseline: dict[int, Path],
                         seeds: list[int]) -> dict[int, float]:
    """Adverse-mean AbsRel difference method − baseline of each seed (mean over each adverse condition's frames,
    then over the conditions, as the tables compute it)."""
    out = {}
    for seed in seeds:
        values = []
        for ckpt in (method[seed], baseline[seed]):
            frames = frame_metrics(protocol, ckpt)
            means = [sum(f["abs_rel"] for f in frames if f["condition"] == c)
                     / max(1, sum(1 for f in frames if f["condition"] == c)) for c in CONDITIONS[1:]]
            values.append(sum(means) / len(means))
        out[seed] = values[0] - values[1]
    return out


def run(protocol: BenchProtocol, runs: Path, replicates: int) -> dict[str, Any]:
    claims, missing = [], []
    for method, baseline, issue, question in CLAIMS:
        m, b = seed_runs(protocol, runs, method), seed_runs(protocol, runs, baseline)
        seeds = sorted(set(m) & set(b))
        if not seeds:
            missing.append({"method": method, "baseline": baseline, "issue": issue,
                            "unfinished": [k for k, r in ((method, m), (baseline, b)) if not r]})
            continue
        result = compare([frame_metrics(protocol, m[s]) for s in seeds],
                         [frame_metrics(protocol, b[s]) for s in seeds], "abs_rel", replicates=replicates)
        claims.append({"method": method, "baseline": baseline, "issue": issue, "question": question,
                       "seed_list": seeds, "per_seed_adverse": per_seed_differences(protocol, m, b, seeds),
                       **result})
        adverse = result["effects"][ADVERSE_MEAN]
        print(f"{method} vs {baseline} (seeds {seeds}): adverse {adverse['mean']:+.4f} "
              f"[{adverse['low']:+.4f}, {adverse['high']:+.4f}] {adverse['verdict']}", flush=True)
    return {"claims": claims, "missing": missing}


def seed_noise(claims: list[dict[str, Any]]) -> dict[str, Any] | None:
    """How far the per-seed differences of each two-seed claim lie apart: the seed noise a one-seed claim
    lacks (min / max over the claims, and how many)."""
    spreads = [abs(a - b) for c in claims if len(c["per_seed_adverse"]) == 2
               for a, b in [tuple(c["per_seed_adverse"].values())]]
    return {"min": min(spreads), "max": max(spreads), "pairs": len(spreads)} if spreads else None


def to_markdown(result: dict[str, Any]) -> str:
    lines = ["# The method issues' claims: paired effects with intervals", "",
             f"Command: `{result['command']}`. Protocol: {result['protocol']} ({result['protocol_summary']}). "
             f"Runs: `{result['runs_root']}`. Difference = method − baseline AbsRel (negative = the method is "
             f"better), mean over the paired seeds and test frames, with the {int(100 * result['level'])} % "
             "interval of the paired two-stage bootstrap over seeds and frames (robustdepth/bench/stats.py, "
             f"{result['replicates']} replicates). ✓ resolved better, ✗ resolved worse, · unresolved. "
             "\"per seed\": each seed's own adverse-mean difference. With 2 seeds the interval is mostly the test "
             "frames' sampling: a statement about these seeds and this test set.", ""]
    head = ["issue", "method − baseline", "seeds", "per seed (adverse)", *CONDITIONS, "adverse mean"]
    lines += ["| " + " | ".join(head) + " |", "|---|---|---|---|" + "---:|" * (len(CONDITIONS) + 1)]
    mark = {"resolved better": "✓", "resolved worse": "✗", "unresolved": "·"}
    for c in result["claims"]:
        cells = []
        for cond in (*CONDITIONS, ADVERSE_MEAN):
            e = c["effects"][cond]
            cells.append(f"{e['mean']:+.4f} [{e['low']:+.4f}, {e['high']:+.4f}] {mark[e['verdict']]}")
        per_seed = ", ".join(f"{v:+.4f}" for v in c["per_seed_adverse"].values())
        seeds = ", ".join(map(str, c["seed_list"])) + (" †" if len(c["seed_list"]) == 1 else "")
        lines.append(f"| {c['issue']} | `{c['method']}` − `{c['baseline']}`: {c['question']} | "
                     f"{seeds} | {per_seed} | " + " | ".join(cells) + " |")
    noise = seed_noise(result["claims"])
    lines += ["", "† One seed: the interval is the test frames' sampling alone and carries no seed-to-seed noise, "
              "so its verdict overstates what is resolved. "
              + (f"Across the two-seed claims above, a claim's two per-seed differences lie {noise['min']:.4f}–"
                 f"{noise['max']:.4f} apart in adverse-mean AbsRel ({noise['pairs']} claims): a one-seed effect of "
                 "that size is not a result." if noise else "")]
    if result["missing"]:
        lines += ["", "Not yet measurable (a row has no finished run; train it with its table's `--rows`): "
                  + "; ".join(f"`{m['method']}` − `{m['baseline']}` (unfinished: {', '.join(m['unfinished'])})"
                              for m in result["missing"]) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default=str(REPO / "benchmarks" / "protocol.yaml"))
    parser.add_argument("--runs", help="runs root (default: the protocol's, e.g. runs/bench for v1)")
    parser.add_argument("--replicates", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    args = parser.parse_args()
    protocol = BenchProtocol.load(args.protocol)
    runs = runs_root_for(protocol, args.runs)
    result = run(protocol, runs, args.replicates)
    result.update({"command": "python benchmarks/method_effects.py" + protocol_flag(args.protocol, REPO),
                   "protocol": protocol_label(args.protocol, REPO), "protocol_summary": protocol.summary(),
                   "runs_root": str(runs), "replicates": args.replicates, "level": 0.95})
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "method_effects.json").write_text(json.dumps(result, indent=1, default=str))
    text = to_markdown(result)
    (args.out / "method_effects.md").write_text(text)
    print(text)


if __name__ == "__main__":
    raise SystemExit(run_script(main))
