"""Is the embedded world good enough for self-supervision, and do its adverse conditions fail a
clear-trained model? Monodepth2 trained on the clear frames (the protocol's cached teacher) against
the trivial constant-depth predictor, per condition on the test split.

    .venv/bin/python benchmarks/world_baseline.py [--protocol benchmarks/protocol.yaml]

Writes docs/results/world_baseline.{json,md}. The constant predictor outputs one depth everywhere;
under the `world` protocol's per-image median scaling that is the per-image GT median — the floor a
learned model must clearly beat.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robustdepth.bench.protocol import ADVERSE, BenchProtocol, evaluate_run, teacher_checkpoint
from robustdepth.bench.script import run_script
from robustdepth.checkpoint import load_checkpoint
from robustdepth.configure import load_config
from robustdepth.evaluation import get_protocol
from robustdepth.evaluation.runner import constant_median_baseline

REPO = Path(__file__).resolve().parents[1]
METRICS = ("abs_rel", "sq_rel", "rmse", "a1")


def table(rows: dict[str, dict], conditions: list[str]) -> str:
    lines = ["| predictor | condition | AbsRel | SqRel | RMSE | δ1 |", "|---|---|---:|---:|---:|---:|"]
    for name, summary in rows.items():
        for c in conditions:
            m = summary[c]
            lines.append(f"| {name} | {c} | {m['abs_rel']:.4f} | {m['sq_rel']:.4f} | {m['rmse']:.3f} | {m['a1']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default=str(REPO / "benchmarks" / "protocol.yaml"))
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    parser.add_argument("--checkpoint", type=Path,
                        help="a clear-trained Monodepth2 run (default: the protocol's teacher)")
    args = parser.parse_args()
    protocol = BenchProtocol.load(args.protocol)
    teacher = (args.checkpoint / "checkpoints" / "last.pt" if args.checkpoint and args.checkpoint.is_dir()
               else args.checkpoint) or teacher_checkpoint(protocol)
    steps = load_checkpoint(teacher)["step"]
    learned = evaluate_run(protocol, teacher)
    cfg = load_config("monodepth2", protocol.common_overrides())
    constant = constant_median_baseline(cfg, get_protocol(protocol.eval_protocol), protocol.eval_split).summary()
    conditions = [c for c in ("clear", *ADVERSE) if c in learned]
    rows = {"Monodepth2 (clear-trained)": learned, "constant depth": constant}
    adverse = {name: sum(s[c]["abs_rel"] for c in ADVERSE if c in s) / len([c for c in ADVERSE if c in s])
               for name, s in rows.items()}
    result = {"checkpoint": str(teacher), "steps": steps, "protocol": {k: str(v) for k, v in protocol.__dict__.items()},
              "rows": {n: {c: {m: s[c][m] for m in METRICS} for c in conditions} for n, s in rows.items()},
              "adverse_mean_abs_rel": adverse}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "world_baseline.json").write_text(json.dumps(result, indent=2))
    command = "python benchmarks/world_baseline.py" + (f" --checkpoint {args.checkpoint}" if args.checkpoint else "")
    md = ["# Monodepth2 on the embedded world: clear vs adverse, against a constant-depth predictor", "",
          f"Command: `{command}`. World `{protocol.world_preset}` "
          f"(seed {protocol.world_seed}), "
          f"{protocol.height}×{protocol.width}; Monodepth2 trained {steps} steps (batch "
          f"{protocol.teacher_batch_size}, from random initialisation: no ImageNet weights here) on the clear "
          f"training frames only (`{teacher}`); evaluation protocol `{protocol.eval_protocol}` "
          "(0.1–80 m, per-image median scaling) "
          f"on the `{protocol.eval_split}` split, the same trajectories rendered in each condition.", "",
          table(rows, conditions), "",
          "Adverse mean AbsRel: " + ", ".join(f"{n} {v:.4f}" for n, v in adverse.items()), ""]
    (args.out / "world_baseline.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    raise SystemExit(run_script(main))
