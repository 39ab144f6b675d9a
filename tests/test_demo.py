"""``robustdepth demo`` end to end on the tiny world with a few steps (the real job is ``make demo``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from robustdepth.demo import CONSTANT, DemoPlan, benchmark_section, run_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoPlan]:
    base = tmp_path_factory.mktemp("demo")
    plan = DemoPlan(baseline_steps=2, combined_steps=1, batch_size=2, world_preset="tiny",
                    world_root=base / "world", quick_run=True, fast=True)
    run_demo(base / "out", plan=plan)
    return base / "out", plan


def test_demo_writes_report_with_every_model_and_the_constant_floor(demo_run):
    out, _ = demo_run
    report = (out / "report.md").read_text()
    for name in ("monodepth2", "all", CONSTANT):
        assert f"| {name} |" in report and f"### {name}" in report  # summary row and detail table
    results = json.loads((out / "results.json").read_text())
    assert set(results) == {"monodepth2", "all", CONSTANT}
    for summary in results.values():
        assert {"clear", "night", "rain", "fog", "snow"} <= set(summary)
    for png in ("abs_rel.png", "world_conditions.png"):
        assert (out / png).stat().st_size > 1000 and f"]({png})" in report
    assert "Every method (benchmark protocol)" not in report  # a quick run does not quote the benchmark


def test_demo_trains_through_the_fast_overlay_only_when_asked(demo_run):
    """plan.fast (the default where the device has native bf16) trains both stages as RECIPE+fast, and the report
    says so; without it the recipes are the plain fp32 ones."""
    import yaml

    out, plan = demo_run
    configs = [yaml.safe_load(p.read_text()) for p in sorted(out.rglob("config.yaml"))]
    assert len(configs) >= 2
    assert all(c["train"]["precision"] == "bf16" and c["train"]["channels_last"] and c["optim"]["fused"]
               for c in configs)
    assert "through the `+fast` overlay" in (out / "report.md").read_text()
    assert (plan.recipe("all"), DemoPlan(fast=False).recipe("all")) == ("all+fast", "all")


def test_demo_second_run_reuses_everything(demo_run):
    out, plan = demo_run
    checkpoints = sorted((out / "monodepth2").rglob("last.pt")) + sorted((out / "all").rglob("last.pt"))
    before = {p: p.stat().st_mtime_ns for p in checkpoints}
    assert len(before) == 2
    run_demo(out, plan=plan)
    assert {p: p.stat().st_mtime_ns for p in checkpoints} == before


def test_benchmark_section_quotes_every_row_with_its_command(tmp_path):
    cells = {"abs_rel": 0.2, "sq_rel": 1.0, "rmse": 5.0, "a1": 0.7}
    row = {c: cells for c in ("clear", "night", "rain", "fog", "snow", "adverse_mean")}
    protocol = {"teacher_steps": "2400", "student_steps": "300", "world_preset": "small", "height": "64",
                "width": "192", "eval_protocol": "world"}
    path = tmp_path / "methods.json"
    path.write_text(json.dumps({"protocol": protocol, "rows": {"Monodepth2": row, "all": row}}))
    text = "\n".join(benchmark_section(path))
    assert "robustdepth bench methods --protocol benchmarks/protocol.yaml" in text
    assert "| Monodepth2 |" in text and "| all |" in text and "teacher 2400 steps" in text
    missing = "\n".join(benchmark_section(tmp_path / "absent.json"))
    assert "is not there" in missing


@pytest.mark.parametrize(("flags", "fast"), [([], True), (["--fp32"], False)])
def test_demo_command_trains_fast_unless_told_fp32(flags, fast, monkeypatch, tmp_path):
    """`robustdepth demo` passes the plan on: the fast overlay where the device has native bf16 (stubbed here to
    yes), fp32 with --fp32."""
    import robustdepth.demo as demo
    from robustdepth.cli import main

    seen = {}
    monkeypatch.setattr(demo, "native_bf16", lambda device: True)
    monkeypatch.setattr(demo, "run_demo", lambda out, plan: seen.setdefault("plan", plan) and out / "report.md")
    assert main(["demo", "--quick", "--out", str(tmp_path), *flags]) == 0
    assert seen["plan"].fast is fast and seen["plan"].quick_run


def test_demo_in_the_other_precision_says_how_to_reuse_the_first(demo_run, monkeypatch, capsys):
    """A demo folder trained through +fast, asked again with --fp32: one clear line (exit 2) naming the differing
    keys and the command that reuses what is there."""
    import dataclasses

    import robustdepth.demo as demo
    from robustdepth.cli import main

    out, plan = demo_run
    monkeypatch.setattr(demo.DemoPlan, "quick", classmethod(lambda cls: dataclasses.replace(plan)))
    assert main(["demo", "--quick", "--fp32", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "differing keys: optim.fused" in err and "`robustdepth demo` (without --fp32) reuses it" in err
    assert len(err.strip().splitlines()) == 1
