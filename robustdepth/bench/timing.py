"""Timing primitives shared by the speed benchmarks (benchmarks/speed.py, benchmarks/profile_step.py).

Contract: every comparison is made from runs ALTERNATED in one process — :func:`alternate` times each variant
once per round, rotating the order so no variant always follows the same one, and :func:`paired_speedup` is the
median of per-round ratios — so both sides of a ratio see the same host load. :func:`timed` synchronises CUDA
before and after the call, so GPU work is included. :func:`cpu_description` names the CPU and the instruction
sets (AMX, AVX512-BF16, VNNI) the bf16 / int8 results depend on; the benchmarks record it next to their results.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = ["alternate", "cpu_description", "paired_speedup", "step_gflop", "sync", "timed"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_gflop(step: Callable[[], Any]) -> float:
    """GFLOPs of one call of ``step`` — every forward and backward op torch's FlopCounterMode counts (convolutions
    and matmuls, FLOP = 2·MAC; a convolution's backward counts its input and its weight gradient, together twice
    its forward). The training rows' roofline bounds are these FLOPs at a measured conv throughput."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops() / 1e9


def timed(fn: Callable[[], Any], device: torch.device) -> float:
    """Seconds one call of ``fn`` takes (GPU work included)."""
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - t0


def alternate(variants: dict[str, Callable[[], Any]], rounds: int, device: torch.device) -> dict[str, list[float]]:
    """Time every variant once per round, in turn, so slow phases of a noisy host hit all of them."""
    times: dict[str, list[float]] = {name: [] for name in variants}
    names = list(variants)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate: no fixed predecessor
            times[name].append(timed(variants[name], device))
    return times


def paired_speedup(base: list[float], other: list[float]) -> float:
    """Median over rounds of base/other (each round's pair ran back to back)."""
    return statistics.median(b / o for b, o in zip(base, other, strict=True))


def cpu_description() -> str:
    """CPU model and its bf16 / int8 instruction sets (AMX tiles, AVX512-BF16, VNNI): every speed-up in a speed
    table depends on them, so each table names the machine (measured conv ratios: docs/results/speed.md)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
    amx = "yes" if "amx_bf16" in flags else "no"
    vnni = "avx512_vnni" in flags or "avx_vnni" in flags
    return (f"{model} ({platform.machine()}), AMX-bf16: {amx}, AVX512-BF16: {'avx512_bf16' in flags}, "
            f"VNNI (int8 dot products): {vnni}")


def fast_overlay() -> dict[str, Any]:
    """The ``+fast`` recipe overlay as dotted ``KEY: value`` overrides, read from the recipe itself so the speed
    benchmarks time exactly what ``RECIPE+fast`` trains with."""
    from omegaconf import OmegaConf

    from robustdepth.config import resolve_recipe_path

    def flat(node: Any, prefix: str) -> dict[str, Any]:
        if not isinstance(node, dict):
            return {prefix: node}
        keys: dict[str, Any] = {}
        for name, child in node.items():
            keys.update(flat(child, f"{prefix}.{name}" if prefix else name))
        return keys
    return flat(OmegaConf.to_container(OmegaConf.load(resolve_recipe_path("fast"))), "")
