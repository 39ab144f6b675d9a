"""Training and inference speed of the Monodepth2 baseline on this machine.

    .venv/bin/python benchmarks/speed.py [--steps 6] [--out docs/results]

For each resolution (64×192, 96×320, 192×640) it times full training steps (3 frames, depth + pose
networks, the complete Monodepth2 loss, backward, Adam; batch 4) through the real trainer on the
analytic corridor scene, and the depth network's inference latency at 640×192 (batch 1). Writes
``speed.json`` and ``speed.md``. Medians over repeated runs; the host is shared and noisy, so
compare ratios taken in one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from robustdepth.config import load_config  # noqa: E402
from robustdepth.networks import DepthNet  # noqa: E402
from robustdepth.training.trainer import Trainer  # noqa: E402
from tests.conftest import corridor_overrides, write_corridor_sequence  # noqa: E402

RESOLUTIONS = ((64, 192), (96, 320), (192, 640))


def time_training(root: Path, height: int, width: int, steps: int, batch: int = 4) -> dict[str, float]:
    cfg = load_config("monodepth2", corridor_overrides(root, **{
        "data.height": height, "data.width": width, "optim.batch_size": batch, "optim.max_steps": steps + 2}))
    with tempfile.TemporaryDirectory() as run:
        trainer = Trainer(cfg, run_dir=run)
        batches = trainer._batches()
        for _ in range(2):  # warm-up (allocator, first-call overheads)
            trainer.train_step(next(batches))
        times = []
        for _ in range(steps):
            batch = next(batches)
            t0 = time.perf_counter()
            trainer.train_step(batch)
            times.append(time.perf_counter() - t0)
    step = statistics.median(times)
    return {"step_s": step, "images_per_s": batch / step, "steps": steps, "batch": batch}


@torch.inference_mode()
def time_inference(height: int = 192, width: int = 640, repeats: int = 20) -> dict[str, float]:
    net = DepthNet().eval()
    x = torch.rand(1, 3, height, width)
    for _ in range(3):
        net(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        net(x)
        times.append(time.perf_counter() - t0)
    return {"latency_ms": 1000 * statistics.median(times), "repeats": repeats}


def to_markdown(result: dict) -> str:
    lines = ["# Speed (eager fp32, CPU)", "", f"Machine: {result['machine']}; torch {result['torch']}, "
             f"{result['threads']} threads. Command: `{result['command']}`", "",
             "| resolution | train step (s, batch 4) | train images/s |", "|---|---:|---:|"]
    for res, r in result["training"].items():
        lines.append(f"| {res} | {r['step_s']:.3f} | {r['images_per_s']:.2f} |")
    inf = result["inference"]
    lines += ["", f"Depth-network inference at 640×192, batch 1: **{inf['latency_ms']:.1f} ms** (median of "
              f"{inf['repeats']})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "command": "python benchmarks/speed.py " + " ".join(sys.argv[1:]),
            "training": {},
        }
        for h, w in RESOLUTIONS:
            root = write_corridor_sequence(Path(tmp) / f"seq{h}", frames=12, height=h, width=w)
            result["training"][f"{h}x{w}"] = time_training(root, h, w, args.steps)
            print(f"train {h}x{w}: {result['training'][f'{h}x{w}']}", flush=True)
        result["inference"] = time_inference()
        print(f"inference 640x192: {result['inference']}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "speed.json").write_text(json.dumps(result, indent=2))
    (args.out / "speed.md").write_text(to_markdown(result))
    print(to_markdown(result))


if __name__ == "__main__":
    main()
