"""benchmarks/bench_cost.py on the tiny world: each row's probe is the row's own config, once in fp32 and once
through the protocol's overlay, with every late term and the latency queue on; a row whose chain has not
finished is reported as not measured (nothing is trained); the table's projection follows from the numbers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from robustdepth.bench.protocol import TEACHER, BenchProtocol, quick_protocol, run_row
from tests.conftest import load_benchmark

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def cost() -> Any:
    return load_benchmark("bench_cost")


@pytest.fixture(scope="module")
def protocol(tmp_path_factory: pytest.TempPathFactory) -> BenchProtocol:
    from robustdepth import world

    root = world.generate("tiny", 0, tmp_path_factory.mktemp("world") / "tiny", progress=False)
    quick = quick_protocol(BenchProtocol.load(REPO / "benchmarks" / "protocol.yaml"))
    return replace(quick, world_root=root, teacher_steps=2, student_steps=10)


def test_probe_configs_differ_only_by_the_overlay_and_switch_late_terms_on(
        cost: Any, protocol: BenchProtocol, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert not cost.chain_ready(protocol, runs, "md4all_dd")  # no teacher yet: nothing would be measured
    run_row(protocol, TEACHER, runs)
    assert cost.chain_ready(protocol, runs, "md4all_dd") and not cost.chain_ready(protocol, runs, "syn2real_ra")
    fp32, fast = (cost.probe_config(protocol, runs, "acdepth", overlay) for overlay in ("", "fast"))
    assert (fp32.train.precision, fast.train.precision) == ("fp32", "bf16")
    assert (fp32.train.channels_last, fast.train.channels_last, fast.optim.fused) == (False, True, True)
    assert fp32.losses.feature_consistency.start_fraction == 0.0 == fast.losses.feature_consistency.start_fraction
    assert fp32.optim.max_steps == protocol.student_steps  # the row's own budget and chain
    assert fp32.providers.teacher.checkpoint == fast.providers.teacher.checkpoint
    sec = cost.probe_config(protocol, runs, "sec_monodepth2", "fast")
    assert sec.providers.latency_queue.enabled and sec.providers.latency_queue.warmup_steps == 0


def test_measured_rows_and_the_projection(cost: Any, protocol: BenchProtocol, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    run_row(protocol, TEACHER, runs)
    m = cost.measure_row(protocol, runs, "md4all_dd", tmp_path / "probe", steps=1, warmup=0, rounds=2)
    assert m["fp32_s_per_step"] > 0 and m["overlay_s_per_step"] > 0 and m["speedup"] > 0 and m["rounds"] == 2
    result = {"protocol_version": 2, "machine": "cpu", "torch": "t", "threads": 1, "load_average": [1.0, 1.0, 1.0],
              "command": "python benchmarks/bench_cost.py", "protocol_summary": "p", "overlay": "fast",
              "rounds": 2, "steps": 1, "warmup": 0, "student_steps": 100, "seeds": [42, 43, 44], "jobs": 2,
              "runs_root": str(runs), "measured": {},
              "rows": {"md4all-DD": {"key": "md4all_dd", "kind": "method",
                                     "probe": {**m, "fp32_s_per_step": 1.2, "overlay_s_per_step": 0.6}},
                       "Syn2Real-RA": {"key": "syn2real_ra", "kind": "method"}},
              "table_wall": cost.table_wall(protocol, runs, ["md4all_dd"])}
    text = cost.to_markdown(result)
    # 100 steps × 3 seeds × s/step ÷ 2 jobs: 0.05 h fp32, 0.025 h through the overlay
    assert "| md4all-DD | method | 1.200 | 0.600 |" in text and "| 0.05 | 0.03 |" in text
    assert "Not measured (its chain has not finished): Syn2Real-RA." in text
    assert result["table_wall"] == {"runs": len(protocol.run_seeds), "finished": 0}


def test_free_core_projection_averages_each_main_rows_cpu_time_and_names_unmeasured_rows(cost: Any) -> None:
    """Σ over the main rows of mean CPU s/step × steps × seeds ÷ jobs; controls are left out, rows without a
    finished run are named rather than guessed."""
    result = {"seeds": [42, 43, 44], "student_steps": 100, "jobs": 2,
              "rows": {"A": {"key": "a", "kind": "method"}, "B": {"key": "b", "kind": "baseline"},
                       "C": {"key": "c", "kind": "control"}},
              "measured": {"a@42": {"cpu_s_per_step": 1.0}, "a@43": {"cpu_s_per_step": 2.0},
                           "c@42": {"cpu_s_per_step": 50.0}, "ab@42": {"cpu_s_per_step": 9.0}}}
    free = cost.cpu_projection(result)
    assert free["hours"] == pytest.approx(1.5 * 100 * 3 / 2 / 3600)
    assert free["missing"] == ["B"]
