"""benchmarks/rosam.py's reading of a table (on a synthetic result, no training) and the recipes' stated schedules."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from robustdepth.configure import load_config
from tests.conftest import load_benchmark

REPO = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    return load_benchmark("rosam")


def _row(adverse: float, clear: float) -> dict[str, Any]:
    return {"clear": {"abs_rel": clear, "a1": 0.6}, "adverse_mean": {"abs_rel": adverse, "sq_rel": 1.0,
                                                                      "rmse": 5.0, "a1": 0.6}}


def _result(bench: ModuleType) -> dict[str, Any]:
    adverse = {"syn2real_ra": 0.2400, "rosam_ore": 0.2398, "rosam_src": 0.2397, "rosam_arom": 0.2399,
               "rosam_arom_rgl": 0.2396, "rosam_arom_rgl_ore": 0.2395, "rosam": 0.2380, "rosam_world_masks": 0.2378,
               "syn2real_ra_seed43": 0.2404, "rosam_seed43": 0.2382, "rosam_world_masks_seed43": 0.2377}
    rows = {k: _row(v, 0.21) for k, v in adverse.items()}
    return {"quick": False, "command": "python benchmarks/rosam.py", "protocol": "benchmarks/protocol.yaml",
            "protocol_summary": "synthetic", "seed": 42, "student_steps": 300, "batch_size": 8, "lr": 2e-5,
            "rows": rows, "seed_noise": None, "seed_pairs": bench.seed_pairs(rows),
            "ablation": bench.ablation_ordering(rows),
            "arom_clear_test": {"Φ_syn / previous": {"flagged_mean": 0.04, "flagged_max": 0.05, "frames": 20}}}


def test_table_compares_paper_numbers_only_within_one_paper_table_and_states_privileges() -> None:
    bench = _bench()
    result = _result(bench)
    text = bench.to_markdown(result)
    assert "paper gain" not in text and "paper ablation AbsRel" in text
    assert result["ablation"]["paper_single_frame_gain_night_abs_rel"] == pytest.approx(0.1792 - 0.1742)
    assert "| rosam_ore | +0.0002 | 0.1734 |" in text
    assert "Privileges" in text and "clear render" in text and "sky as one more region" in text
    pairs = result["seed_pairs"]
    assert pairs["syn2real_ra"]["adverse_abs_rel_diff"] == pytest.approx(0.0004)
    assert pairs["rosam"]["adverse_abs_rel_mean"] == pytest.approx(0.2381)
    # the claim: two-seed means 0.2402 vs 0.2381 = +0.0021, beyond the largest seed difference (0.0004)
    assert "+0.0021 adverse AbsRel, beyond the largest seed difference (0.0004)" in text
    assert "## AROM on the clear test frames" in text and "4.00 %" in text


def test_table_rewrite_keeps_the_checks_section(tmp_path: Path) -> None:
    bench = _bench()
    path = tmp_path / "rosam.md"
    path.write_text("# old table\n\n<!-- BEGIN rosam_checks -->\nchecks body\n<!-- END rosam_checks -->\n")
    bench.write_keeping_checks(path, "# new table\n")
    text = path.read_text()
    assert text.startswith("# new table") and "old table" not in text and "checks body" in text
    with pytest.raises(SystemExit, match="unknown row"):
        bench.main(["--rows", "rosam,nope"])


def test_recipes_resolve_to_the_schedules_their_comments_state() -> None:
    s2r, rosam = load_config("syn2real_ra"), load_config("rosam")
    assert (s2r.optim.epochs, s2r.optim.batch_size, s2r.optim.lr) == (10, 12, 1e-4)
    assert (rosam.optim.epochs, rosam.optim.batch_size, rosam.optim.lr) == (10, 10, 8e-5)
    for cfg in (s2r, rosam):
        assert (cfg.optim.decay_every_epochs, cfg.optim.gamma) == (5, 0.5)
    r = rosam.providers.rosam
    assert (r.tau0, r.lam, r.threshold_units, r.sigma_floor, r.kappa) == (2.0, 6.0, "relative", 0.05, 0.05)
    assert "λ 6 on σ/μ" in (REPO / "recipes" / "rosam.yaml").read_text()
