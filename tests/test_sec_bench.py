"""benchmarks/sec.py without training: its rows exist in the registry, the computed verdicts, seed noise, the
queue's record read from a checkpoint, and row selection."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
import torch

from robustdepth.bench.protocol import RUN_REGISTRY
from robustdepth.checkpoint import FORMAT
from robustdepth.configure import load_config
from tests.conftest import load_benchmark

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    return load_benchmark("sec")


def _row(adverse: float) -> dict:
    return {"metrics": {"adverse_mean": {"abs_rel": adverse, "a1": 0.5}, "clear": {"abs_rel": 0.2, "a1": 0.6}}}


def test_every_table_row_is_registered_and_the_controls_are_what_they_say(bench: ModuleType) -> None:
    assert set(bench.TABLE.values()) <= set(RUN_REGISTRY)
    for seeded in bench.SEEDED.values():
        assert "train.seed=43" in RUN_REGISTRY[bench.TABLE[seeded]].extra
    positive = load_config(RUN_REGISTRY["sec_positive_only"].recipe, list(RUN_REGISTRY["sec_positive_only"].extra))
    assert not positive.losses.sec.negative and not positive.providers.latency_queue.enabled
    assert positive.losses.sec.weight == load_config("sec_monodepth2").losses.sec.weight
    assert load_config(RUN_REGISTRY["sec_frozen_queue"].recipe).providers.latency_queue.frozen
    literal = load_config("sec_monodepth2", list(RUN_REGISTRY["sec_monodepth2_literal"].extra))
    assert literal.providers.latency_queue.trigger == "variance"
    assert load_config("sec_monodepth2").providers.latency_queue.trigger == "margin"


@pytest.mark.parametrize(("sec", "positive", "expected"), [
    ((0.250, 0.252), (0.260, 0.262), "yes"),         # lower by 0.010, noise 0.002
    ((0.259, 0.261), (0.260, 0.262), "no —"),        # lower by 0.001: within the noise
    ((0.270, 0.272), (0.260, 0.262), "no, it is worse"),
])
def test_negative_term_verdict_is_computed_from_the_numbers(bench: ModuleType, sec, positive, expected) -> None:
    rows = {"md2+sec": _row(sec[0]), "md2+sec_seed43": _row(sec[1]),
            "sec_positive_only": _row(positive[0]), "sec_positive_only_seed43": _row(positive[1])}
    pairs = bench.seed_pairs(rows)
    assert pairs == {"md2+sec": pytest.approx(0.002), "sec_positive_only": pytest.approx(0.002)}
    line = bench.conclusions(rows, max(pairs.values()))[0]
    assert line.startswith("Does SECL's negative term add anything beyond the positive-only control")
    assert f": {expected}" in line
    mean_sec, mean_pos = sum(sec) / 2, sum(positive) / 2
    assert f"md2+sec {mean_sec:.4f} vs sec_positive_only {mean_pos:.4f}" in line and "mean of 2 seed(s)" in line


def test_no_verdict_without_both_rows_or_without_noise(bench: ModuleType) -> None:
    assert bench.conclusions({"md2+sec": _row(0.25)}, 0.001) == []
    line = bench.conclusions({"md2+sec": _row(0.25), "sec_positive_only": _row(0.26)}, None)[0]
    assert "no seed noise measured, so no verdict" in line


def test_queue_stats_read_from_a_checkpoint_and_old_queues_refused(bench: ModuleType, tmp_path: Path) -> None:
    state = {"version": 2, "counts": {"periodic": 9, "forced": 3, "observed": 54},
             "negative_ages": list(range(54)), "trigger": "margin"}
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)

    def save(providers: dict) -> None:  # the fields load_checkpoint checks, and the queue's record
        torch.save({"format": FORMAT, "config": {}, "models": {"depth": {}}, "providers": providers}, run / "last.pt")

    save({"latency_queue": {"_extra_state": state}})
    stats = bench.queue_stats(run / "last.pt", "sec_monodepth2")
    assert stats["forced_rate"] == pytest.approx(3 / 54) and stats["age"]["median"] == 27
    assert bench.refresh_cell(stats) == "3 / 9 (0.06)" and bench.age_cell(stats) == "27 [5–48] (53)"
    save({"latency_queue": {"_extra_state": {**state, "version": 1}}})
    with pytest.raises(SystemExit, match="previous latency queue"):
        bench.queue_stats(run / "last.pt", "sec_monodepth2")
    save({})
    assert bench.queue_stats(run / "last.pt", "md2_deg_s5") is None


def test_rows_selection_accepts_table_names_and_registry_keys(bench: ModuleType) -> None:
    assert bench.selected_rows(None, None) is None
    assert bench.selected_rows("md2+sec, sec_positive_only_seed43", None) == {"md2+sec", "sec_positive_only_seed43"}
    assert bench.selected_rows(None, ["sec_monodepth2"]) == {"md2+sec"}
    with pytest.raises(SystemExit, match="unknown row"):
        bench.selected_rows("nope", None)
