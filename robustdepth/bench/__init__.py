"""``robustdepth bench``: benchmarks that train/evaluate models and write docs/results tables.

Each benchmark is its own module with ``add_subparser(commands)``; this package only groups them.
"""

from __future__ import annotations

import importlib
from typing import Any

BENCH_MODULES = ("robustdepth.bench.corruptions", "robustdepth.bench.methods")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="benchmarks (corruptions, methods, …)", description=(
        "Benchmarks that write JSON + Markdown (+ plots) under docs/results/. Each is resumable where it "
        "trains models."))
    commands = p.add_subparsers(dest="bench_command", metavar="BENCHMARK", required=True)
    for module in BENCH_MODULES:
        importlib.import_module(module).add_subparser(commands)
