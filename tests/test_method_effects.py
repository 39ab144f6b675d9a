"""benchmarks/method_effects.py: which runs pair up, and the per-seed differences it prints beside the interval."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import load_benchmark

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def effects() -> Any:
    return load_benchmark("method_effects")


def _frames(offset: dict[str, float]) -> list[dict[str, Any]]:
    """Two frames per condition; AbsRel 0.2 + the condition's offset + 0.01 × frame index."""
    return [{"name": f"test/seq_000/{c}/{i:06d}", "condition": c, "abs_rel": 0.2 + offset.get(c, 0.0) + 0.01 * i}
            for c in ("clear", "night", "rain", "fog", "snow") for i in range(2)]


def test_pairs_use_only_seeds_both_rows_finished_and_report_each_seeds_difference(
        effects: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = {"m": {42: Path("m42"), 43: Path("m43")}, "b": {42: Path("b42")}}
    frames = {Path("m42"): _frames({"night": -0.04}), Path("m43"): _frames({}),
              Path("b42"): _frames({"fog": 0.02})}
    monkeypatch.setattr(effects, "CLAIMS", (("m", "b", "X", "m vs b"), ("m", "absent", "X", "nothing")))
    monkeypatch.setattr(effects, "seed_runs", lambda protocol, root, key: runs.get(key, {}))
    monkeypatch.setattr(effects, "frame_metrics", lambda protocol, ckpt: frames[ckpt])
    result = effects.run(protocol=None, runs=Path("r"), replicates=200)
    (claim,) = result["claims"]
    assert claim["seed_list"] == [42]  # seed 43 has no baseline twin: not paired
    # adverse mean of m42 − b42: (night −0.04, fog −0.02 against the baseline's +0.02) / 4 conditions
    assert claim["per_seed_adverse"][42] == pytest.approx((-0.04 - 0.02) / 4)
    assert claim["effects"]["adverse_mean"]["mean"] == pytest.approx(-0.015)
    assert result["missing"] == [{"method": "m", "baseline": "absent", "issue": "X", "unfinished": ["absent"]}]
    text = effects.to_markdown({**result, "command": "c", "protocol": "p", "protocol_summary": "s",
                                "runs_root": "r", "replicates": 200, "level": 0.95})
    assert "`m` − `b`: m vs b | 42 † | -0.0150 |" in text and "unfinished: absent" in text
    assert "† One seed" in text


def test_seed_noise_is_the_spread_of_each_two_seed_claims_per_seed_differences(effects: Any) -> None:
    claims = [{"per_seed_adverse": {42: -0.005, 43: -0.007}}, {"per_seed_adverse": {42: 0.001, 43: -0.003}},
              {"per_seed_adverse": {42: 0.02}}]
    assert effects.seed_noise(claims) == {"min": pytest.approx(0.002), "max": pytest.approx(0.004), "pairs": 2}
    assert effects.seed_noise(claims[2:]) is None


@pytest.mark.parametrize("script", ["method_effects.py", "sec.py", "distillation.py", "rosam.py"])
def test_a_missing_protocol_file_is_one_error_line_and_exit_2(script: str, tmp_path: Path) -> None:
    """Benchmark scripts follow the command line's error contract (robustdepth.bench.script.run_script)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), "--protocol", str(tmp_path / "no.yaml")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [f"error: benchmark protocol not found: {tmp_path / 'no.yaml'}"]
