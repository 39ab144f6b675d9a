"""Throughput of the image-space translators: images/s at 640×192, batch 8, severity 0.5, per condition.

Usage: ``python benchmarks/degrade_speed.py [--threads 1 2] [--repeats 7] [--out docs/results]``
Writes ``degrade_speed.json`` and ``degrade_speed.md``. The input is a real KITTI frame when
``../shared/realdata`` is present (content barely matters for speed), else a smooth random image.
The host is shared and noisy, so the median over repeats is reported, with the best and worst, and the
1-minute load average before the run. Under contention one thread can beat two (an OpenMP op waits for its
slowest thread), which is also how DataLoader workers run (one thread each).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from robustdepth.bench.script import run_script
from robustdepth.degrade import CONDITIONS, translate

HEIGHT, WIDTH, BATCH, SEVERITY = 192, 640, 8, 0.5
KITTI_FRAME = Path(__file__).resolve().parents[2] / "shared/realdata/kitti_raw_seq_demo_slam/input/0000000000.png"


def _input_batch() -> tuple[torch.Tensor, str]:
    """A B×3×192×640 batch in [0, 1]: a KITTI frame if available, else smooth noise."""
    if KITTI_FRAME.is_file():
        from PIL import Image

        frame = np.asarray(Image.open(KITTI_FRAME).convert("RGB").resize((WIDTH, HEIGHT), Image.BILINEAR))
        image = torch.from_numpy(frame.copy()).permute(2, 0, 1)[None].float() / 255
        return image.repeat(BATCH, 1, 1, 1), f"KITTI frame {KITTI_FRAME.name}"
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(BATCH, 3, HEIGHT // 8, WIDTH // 8, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(HEIGHT, WIDTH), mode="bilinear"), "smooth random"


def measure(condition: str, images: torch.Tensor, repeats: int) -> dict[str, float]:
    """Images/s of one translator (one warm-up call, then ``repeats`` timed calls)."""
    translate(images, condition, SEVERITY, torch.Generator().manual_seed(0))
    rates = []
    for i in range(repeats):
        start = time.perf_counter()
        translate(images, condition, SEVERITY, torch.Generator().manual_seed(i))
        rates.append(images.shape[0] / (time.perf_counter() - start))
    return {"images_per_s_median": statistics.median(rates), "images_per_s_best": max(rates),
            "images_per_s_worst": min(rates)}


def _markdown(results: dict[str, dict[str, dict[str, float]]], meta: dict[str, object]) -> str:
    threads = list(results)
    lines = [
        "# Image-space translator throughput",
        "",
        f"`python benchmarks/degrade_speed.py` — {meta['height']}×{meta['width']}, batch {meta['batch']}, "
        f"severity {meta['severity']}, float32 CPU ({meta['cpu_count']} cores), input: {meta['input']}. "
        f"Median of {meta['repeats']} timed batches, [worst–best] in brackets; the host is shared and was "
        f"loaded (1-min load average {meta['load_average_1min']}) — compare ratios, not absolute values.",
        "",
        "| condition | " + " | ".join(f"images/s, {t} thread(s)" for t in threads) + " |",
        "|---|" + "---:|" * len(threads),
    ]
    for condition in results[threads[0]]:
        cells = []
        for t in threads:
            r = results[t][condition]
            cells.append(f"{r['images_per_s_median']:.0f} [{r['images_per_s_worst']:.0f}–{r['images_per_s_best']:.0f}]")
        lines.append(f"| {condition} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch/OpenCV thread counts")
    parser.add_argument("--repeats", type=int, default=7, help="timed batches per condition")
    parser.add_argument("--out", type=Path, default=Path("docs/results"), help="output folder")
    args = parser.parse_args(argv)
    import cv2

    load = os.getloadavg()[0]
    cpu_count = os.cpu_count()
    images, source = _input_batch()
    results: dict[str, dict[str, dict[str, float]]] = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        results[str(threads)] = {condition: measure(condition, images, args.repeats) for condition in CONDITIONS}
    meta = {"height": HEIGHT, "width": WIDTH, "batch": BATCH, "severity": SEVERITY, "threads": args.threads,
            "repeats": args.repeats, "input": source, "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "cpu_count": cpu_count,
            "load_average_1min": round(load, 2)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "degrade_speed.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    (args.out / "degrade_speed.md").write_text(_markdown(results, meta))
    print(_markdown(results, meta))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_script(main))
