"""The shared benchmark run registry (robustdepth.bench.protocol) on the tiny world with a few steps.

Checks what the tables rely on: one key = one folder, a row asked for twice (by two tables) is trained
once, an interrupted row resumes to its step count, a folder holding another configuration is refused
with the folder and the differing keys named, chains resolve as the papers (students start from / distil
the teacher, Syn2Real's Φ_day and histogram, the shared mask cache, the queue schedule), and the
protocol file's errors name the missing key.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from robustdepth.bench.protocol import (
    ROWS,
    TEACHER,
    BenchProtocol,
    RunMismatchError,
    queue_schedule,
    quick_protocol,
    row_config,
    row_dir,
    row_inputs,
    run_row,
    train_row,
)
from robustdepth.training.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
# Both heavy fixtures train: keep every test of this file on one xdist worker so they train once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bench")]


@pytest.fixture(scope="module")
def protocol(tmp_path_factory: pytest.TempPathFactory) -> BenchProtocol:
    """The quick protocol on a tiny world of its own, 2 teacher steps and 2 student steps."""
    from robustdepth import world

    root = world.generate("tiny", 0, tmp_path_factory.mktemp("world") / "tiny", progress=False)
    quick = quick_protocol(BenchProtocol.load(REPO / "benchmarks" / "protocol.yaml"))
    return replace(quick, world_root=root, teacher_steps=2, student_steps=2, max_frames=2)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("runs")


@pytest.fixture(scope="module")
def teacher(protocol: BenchProtocol, runs: Path) -> Path:
    """The teacher, interrupted after one step first (as a killed benchmark would leave it), then run_row."""
    from robustdepth.training.trainer import train

    cfg = row_config(protocol, TEACHER, protocol.teacher_recipe, extra=[f"optim.lr={protocol.teacher_lr}"],
                     runs_root=runs, steps=protocol.teacher_steps, batch_size=protocol.teacher_batch_size)
    train(cfg, run_dir=row_dir(runs, TEACHER), stop_at=1)
    assert load_checkpoint(row_dir(runs, TEACHER) / "checkpoints" / "last.pt")["step"] == 1
    return run_row(protocol, TEACHER, runs)[0]


@pytest.fixture(scope="module")
def md4all(protocol: BenchProtocol, runs: Path, teacher: Path) -> Path:
    return run_row(protocol, "md4all_dd", runs)[0]


def test_key_maps_to_its_folder(runs: Path) -> None:
    assert row_dir(runs, "md4all_dd") == runs / "md4all_dd"
    assert row_dir(Path("runs/bench"), TEACHER) == Path("runs/bench/teacher")
    for bad in ("../teacher", "a/b", "MD2", ""):
        with pytest.raises(ValueError, match="row key"):
            row_dir(runs, bad)


def test_interrupted_row_resumes_and_is_timed(teacher: Path, runs: Path, protocol: BenchProtocol) -> None:
    assert teacher == runs / "teacher" / "checkpoints" / "last.pt"
    assert load_checkpoint(teacher)["step"] == protocol.teacher_steps
    timing = json.loads((runs / "teacher" / "timing.json").read_text())
    assert timing["action"] == "resumed" and timing["steps"] == protocol.teacher_steps - 1
    assert timing["s_per_step"] > 0 and timing["recipe"] == "monodepth2"


def test_row_requested_twice_is_trained_once(md4all: Path, teacher: Path, protocol: BenchProtocol,
                                             runs: Path) -> None:
    stamps = {p: p.stat().st_mtime_ns for p in (md4all, teacher)}
    timing = (runs / "md4all_dd" / "timing.json").read_text()
    # A second table asks for the same row, through the registry and through train_row directly.
    again, s_step = run_row(protocol, "md4all_dd", runs)
    direct, _ = train_row(protocol, "md4all_dd", "md4all_dd", teacher=teacher, init=teacher, runs_root=runs)
    assert again == direct == md4all == runs / "md4all_dd" / "checkpoints" / "last.pt"
    assert {p: p.stat().st_mtime_ns for p in (md4all, teacher)} == stamps  # nothing retrained
    assert (runs / "md4all_dd" / "timing.json").read_text() == timing
    assert s_step == json.loads(timing)["s_per_step"]
    assert load_checkpoint(md4all)["step"] == protocol.student_steps


def test_student_starts_from_and_distils_the_teacher(md4all: Path, teacher: Path) -> None:
    cfg = load_checkpoint(md4all)["config"]
    assert cfg["providers"]["teacher"]["checkpoint"] == str(teacher)
    assert cfg["model"]["init_checkpoint"] == str(teacher)


def test_other_configuration_in_folder_is_refused(md4all: Path, teacher: Path, protocol: BenchProtocol,
                                                  runs: Path) -> None:
    with pytest.raises(RunMismatchError) as err:
        train_row(protocol, "md4all_dd", "md4all_dd", teacher=teacher, extra=["optim.lr=1.0e-5"], runs_root=runs)
    message = str(err.value)
    assert str(runs / "md4all_dd") in message and "optim.lr" in message and "1e-05" in message
    # Another recipe in an existing folder (ACDepth asked where md4all-DD lives) names its keys too.
    with pytest.raises(RunMismatchError, match=r"losses\."):
        train_row(protocol, "md4all_dd", "acdepth", teacher=teacher, runs_root=runs)
    assert load_checkpoint(md4all)["step"] == protocol.student_steps


def test_syn2real_chain_masks_and_queue(md4all: Path, teacher: Path, protocol: BenchProtocol, runs: Path) -> None:
    """Configs as the tables train them (built, not trained): Φ_syn/Φ_day, P^day, mask cache, queue."""
    syn = row_config(protocol, "syn2real_ra", **row_inputs(protocol, "syn2real_ra", runs))
    assert syn.providers.teacher.checkpoint == str(md4all) and syn.model.init_checkpoint == str(md4all)
    assert syn.providers.day_model.checkpoint == str(teacher)
    assert syn.losses.syn2real_kl.prior_path == str(runs / "day_histograms" / "teacher.json")
    assert (runs / "day_histograms" / "teacher.json").is_file()
    combined = row_config(protocol, "all", **row_inputs(protocol, "all", runs))
    assert combined.providers.masks.cache == str(runs / "masks_felzenszwalb")
    assert (runs / "masks_felzenszwalb" / "masks.json").is_file()
    assert combined.providers.latency_queue.warmup_steps == queue_schedule(protocol.student_steps)[0]
    assert not (runs / "all").exists() and not (runs / "syn2real_ra").exists()


def test_unknown_row_and_wrong_chain_are_named(protocol: BenchProtocol, runs: Path, teacher: Path) -> None:
    with pytest.raises(ValueError, match="'no_such_row'"):
        run_row(protocol, "no_such_row", runs)
    with pytest.raises(ValueError, match="'md4all_dd'.*teacher"):
        row_config(protocol, "md4all_dd", "md4all_dd", runs_root=runs)  # a distillation recipe without teacher
    assert {"md4all_dd", "syn2real_ra", "acdepth", "rosam", "md2_continued", "sec_monodepth2", "all"} <= set(ROWS)


def test_protocol_errors_name_the_key(tmp_path: Path) -> None:
    d = yaml.safe_load((REPO / "benchmarks" / "protocol.yaml").read_text())
    del d["student"]["steps"]
    path = tmp_path / "protocol.yaml"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ValueError, match=r"'student\.steps'"):
        BenchProtocol.load(path)
    d["student"]["steps"] = "many"
    path.write_text(yaml.safe_dump(d))
    with pytest.raises(ValueError, match=r"student\.steps='many'"):
        BenchProtocol.load(path)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        BenchProtocol.load(tmp_path / "missing.yaml")
    assert BenchProtocol.load(REPO / "benchmarks" / "protocol.yaml").student_steps > 0


def test_methods_reading_is_computed_from_the_table() -> None:
    from robustdepth.bench.methods import reading

    def row(clear: float, adverse: float, rmse: float, a1: float) -> dict:
        cells = {"abs_rel": adverse, "sq_rel": 1.0, "rmse": rmse, "a1": a1}
        return {"clear": {**cells, "abs_rel": clear}, "adverse_mean": cells}

    rows = {"Monodepth2": row(0.20, 0.30, 10.0, 0.50), "A": row(0.21, 0.24, 9.0, 0.60), "B": row(0.19, 0.25, 9.5, 0.55)}
    text = "\n".join(reading(rows))
    assert "| A | -20.0 % | +5.0 % | -10.0 % | +20.0 % |" in text
    assert "adverse AbsRel: A (0.2400)" in text and "clear AbsRel: B (0.1900)" in text
    assert reading({"A": rows["A"]}) == []  # no baseline row, nothing to read
