"""The shared benchmark run registry (robustdepth.bench.protocol) on the tiny world with a few steps.

Checks what the tables rely on: one key = one folder, a row asked for twice (by two tables) is trained
once, an interrupted row resumes to its step count, a folder holding another configuration is refused
with the folder and the differing keys named, chains resolve as the papers (students start from / distil
the teacher, Syn2Real's Φ_day and histogram, the shared mask cache, the queue schedule), the protocol file's
errors name the missing key; and protocol v2: seeds as a dimension of the registry (own folders, shared chain,
the registered ``*_seed43`` rows reused as seed 43), the student schedule (epochs, decay at 3/4) without
touching the teacher's config, versioned runs roots, per-frame metrics beside each evaluation, ``--device``
passed through, and the methods table's comparisons, reading and forest plot computed from its numbers.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from robustdepth.bench.protocol import (
    RUN_REGISTRY,
    TEACHER,
    BenchProtocol,
    RowSpec,
    default_runs_root,
    evaluate_run,
    frame_metrics,
    frames_path,
    quick_protocol,
    row_config,
    row_dir,
    row_inputs,
    run_folder,
    run_row,
    seed_alias,
    seed_dir,
    student_budget,
    table_protocol,
    teacher_root,
    train_row,
)
from robustdepth.checkpoint import load_checkpoint
from robustdepth.training.stages import RunMismatchError, queue_schedule

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
    expected = {"md4all_dd", "syn2real_ra", "acdepth", "rosam", "md2_continued", "sec_monodepth2", "all"}
    assert expected <= set(RUN_REGISTRY)


def test_protocol_errors_name_the_key(tmp_path: Path) -> None:
    d = yaml.safe_load((REPO / "benchmarks" / "protocol_v1.yaml").read_text())
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
    v2 = yaml.safe_load((REPO / "benchmarks" / "protocol.yaml").read_text())
    v2["student"]["epochs"] = "twelve"
    path.write_text(yaml.safe_dump(v2))
    with pytest.raises(ValueError, match=r"student\.epochs='twelve'"):
        BenchProtocol.load(path)
    v2["student"]["epochs"], v2["seeds"] = 12, [42, "43"]
    path.write_text(yaml.safe_dump(v2))
    with pytest.raises(ValueError, match="seeds="):
        BenchProtocol.load(path)


def test_v2_protocol_keeps_v1_teacher_and_states_its_version() -> None:
    v1 = BenchProtocol.load(REPO / "benchmarks" / "protocol_v1.yaml")
    v2 = BenchProtocol.load(REPO / "benchmarks" / "protocol.yaml")
    assert (v1.version, v2.version) == (1, 2) and len(v2.run_seeds) >= 3 and v2.run_seeds[0] == v2.seed
    assert v1.run_seeds == (v1.seed,) and v1.student_steps == 300 and v1.student_decay_every_epochs == 0
    assert v2.student_epochs >= 10 and v2.student_decay_every_epochs == 0.75 * v2.student_epochs
    assert v2.student_gamma == 0.1 and v2.student_steps == 0  # steps follow from the epochs (student_budget)
    teacher = ("world_preset", "world_seed", "world_root", "height", "width", "seed", "teacher_recipe",
               "teacher_steps", "teacher_batch_size", "teacher_lr", "eval_split", "eval_protocol", "max_frames")
    assert {k: getattr(v1, k) for k in teacher} == {k: getattr(v2, k) for k in teacher}
    assert v1.summary().startswith("protocol v1:") and v2.summary().startswith("protocol v2:")
    assert "10 epochs" in v2.summary() and "seeds 42, 43, 44" in v2.summary()
    assert (v1.student_overlay, v2.student_overlay) == ("", "fast") and "+fast overlay" in v2.summary()
    # versioned runs roots; the default roots of every version share v1's teacher folder
    assert default_runs_root(v1) == Path("runs/bench") and default_runs_root(v2) == Path("runs/bench_v2")
    assert default_runs_root(quick_protocol(v2)) == Path("runs/bench_v2_quick")
    assert teacher_root(v2, Path("runs/bench_v2")) == Path("runs/bench") == teacher_root(v1, Path("runs/bench"))
    assert teacher_root(v2, Path("elsewhere")) == Path("elsewhere")
    quick = quick_protocol(v2)
    assert quick.run_seeds == v2.run_seeds[:2] and quick.student_epochs == 0 and quick.student_steps > 0


def test_seed_folders_cannot_collide_with_rows_and_aliases_are_exact(runs: Path) -> None:
    assert seed_dir(runs, "md4all_dd") == runs / "md4all_dd"
    assert seed_dir(runs, "md4all_dd", 43) == runs / "md4all_dd@seed43"
    with pytest.raises(ValueError, match="row key"):
        row_dir(runs, "md4all_dd@seed43")  # no row key can name a seed folder
    assert seed_alias("md4all_dd", 43) == "md4all_dd_seed43"  # the distillation table's seed-noise row
    assert seed_alias("sec_monodepth2", 43) == "sec_monodepth2_seed43"
    assert seed_alias("md4all_dd", 44) is None and seed_alias("acdepth", 43) is None
    # a `_seed43` row that is NOT seed 43 of its namesake (other overrides) is never taken for it
    RUN_REGISTRY["acdepth_seed43"] = RowSpec("acdepth", extra=("train.seed=43", "optim.lr=1e-5"))
    try:
        assert seed_alias("acdepth", 43) is None
    finally:
        del RUN_REGISTRY["acdepth_seed43"]


def test_seed_is_a_dimension_of_the_registry(md4all: Path, teacher: Path, protocol: BenchProtocol,
                                             runs: Path) -> None:
    done: dict = {}
    ckpt, _ = run_row(protocol, "syn2real_ra", runs, done, seed=44)
    assert ckpt == runs / "syn2real_ra@seed44" / "checkpoints" / "last.pt"
    cfg = load_checkpoint(ckpt)["config"]
    assert cfg["train"]["seed"] == 44
    # the chain is the protocol seed's, shared: Φ_syn = md4all_dd (seed 42 folder), Φ_day = the teacher
    assert cfg["providers"]["teacher"]["checkpoint"] == str(md4all) == cfg["model"]["init_checkpoint"]
    assert cfg["providers"]["day_model"]["checkpoint"] == str(teacher)
    assert not (runs / "md4all_dd@seed44").exists() and "syn2real_ra@seed44" in done
    assert run_row(protocol, "syn2real_ra", runs, {}, seed=44)[0] == ckpt  # reused, not retrained
    # the protocol's own seed is today's folder; a registered `<key>_seed43` row serves as seed 43
    assert run_row(protocol, "md4all_dd", runs, {}, seed=protocol.seed)[0] == md4all
    alias, _ = run_row(protocol, "md4all_dd", runs, {}, seed=43)
    assert alias == runs / "md4all_dd_seed43" / "checkpoints" / "last.pt"
    assert load_checkpoint(alias)["config"]["train"]["seed"] == 43
    with pytest.raises(ValueError, match="teacher is trained once"):
        run_row(protocol, TEACHER, runs, {}, seed=43)
    # a folder holding another seed's run is refused (train.* is otherwise run mechanics)
    with pytest.raises(RunMismatchError, match=r"train\.seed"):
        train_row(protocol, "md4all_dd", "md4all_dd", teacher=teacher, extra=["train.seed=44"], runs_root=runs)


def test_v2_schedule_touches_students_not_the_teacher(protocol: BenchProtocol, runs: Path, teacher: Path) -> None:
    from robustdepth.data import build_dataset
    from robustdepth.training.stages import config_differences

    v2 = replace(protocol, version=2, student_epochs=3, student_steps=0, student_decay_every_epochs=2.25,
                 student_gamma=0.1, student_overlay="fast")
    cfg = row_config(v2, "md4all_dd", "md4all_dd", teacher=teacher, runs_root=runs)
    per_epoch = len(build_dataset(cfg, cfg.data.train_split, train=True)) // v2.student_batch_size
    assert student_budget(v2) == 3 * per_epoch == cfg.optim.max_steps
    assert cfg.optim.decay_every_epochs == 2.25 and cfg.optim.gamma == 0.1 and cfg.optim.lr == protocol.student_lr
    # the student overlay (fast) reaches students only; the shared teacher keeps the plain recipe
    assert (cfg.train.precision, cfg.train.channels_last, cfg.optim.fused) == ("bf16", True, True)
    v1_cfg = row_config(protocol, "md4all_dd", "md4all_dd", teacher=teacher, runs_root=runs)
    assert v1_cfg.optim.decay_every_epochs != 2.25  # version 1 keeps the recipe's decay (cached runs stay valid)

    def teacher_cfg(p: BenchProtocol):
        return row_config(p, TEACHER, p.teacher_recipe, extra=[f"optim.lr={p.teacher_lr}"], runs_root=runs,
                          steps=p.teacher_steps, batch_size=p.teacher_batch_size)

    from robustdepth.config import to_dict

    assert config_differences(to_dict(teacher_cfg(protocol)), teacher_cfg(v2)) == []
    assert teacher_cfg(v2).train.precision == "fp32"
    assert teacher_cfg(v2).optim.decay_every_epochs == teacher_cfg(protocol).optim.decay_every_epochs
    # --device passes through to train.device; a run trained elsewhere is still the same experiment
    gpu = replace(protocol, device="cuda")
    assert row_config(gpu, "md4all_dd", "md4all_dd", teacher=teacher, runs_root=runs).train.device == "cuda"
    assert config_differences(to_dict(v1_cfg), row_config(gpu, "md4all_dd", "md4all_dd", teacher=teacher,
                                                           runs_root=runs)) == []
    assert table_protocol(REPO / "benchmarks" / "protocol.yaml", True, device="cuda").device == "cuda"


def test_evaluation_keeps_per_frame_metrics(md4all: Path, protocol: BenchProtocol) -> None:
    summary = evaluate_run(protocol, md4all)
    frames = frame_metrics(protocol, md4all)
    assert frames_path(protocol, md4all) == md4all.parent.parent / "results_world_frames.json"
    conditions = {f["condition"] for f in frames}
    assert conditions and all(f["name"].split("/")[-2] == f["condition"] for f in frames)
    for cond in conditions:  # the summary is the mean of the sidecar's frames
        values = [f["abs_rel"] for f in frames if f["condition"] == cond]
        assert summary[cond]["abs_rel"] == pytest.approx(sum(values) / len(values), rel=1e-6)
    # a cached result without its sidecar is evaluated again
    frames_path(protocol, md4all).unlink()
    evaluate_run(protocol, md4all)
    assert frames_path(protocol, md4all).is_file()


def _synthetic_frames(shift: float, seed: int) -> list[dict]:
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for f in range(30):
        base = 0.2 + 0.1 * rng.standard_normal() ** 2
        for cond in ("clear", "night", "rain", "fog", "snow"):
            out.append({"name": f"seq/{cond}/{f:06d}", "condition": cond, "abs_rel": base + shift})
    return out


def test_methods_comparisons_reading_and_plot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Comparisons pair the rows' seeds (the one-seed teacher with each); reading and table come from them."""
    from robustdepth.bench import methods

    frames = {"t": _synthetic_frames(0.0, 0), "c42": _synthetic_frames(-0.001, 0), "c43": _synthetic_frames(0.0, 0),
              "d42": _synthetic_frames(-0.02, 0), "d43": _synthetic_frames(-0.021, 0)}
    monkeypatch.setattr(methods, "frame_metrics", lambda protocol, ckpt: frames[str(ckpt)])
    rows = methods.table_rows(["md2_continued", "md4all_dd"])
    assert list(rows) == ["Monodepth2 (teacher)", "Monodepth2 continued", "md4all-DD"]
    checkpoints = {"Monodepth2 (teacher)": {42: Path("t")}, "Monodepth2 continued": {42: Path("c42"), 43: Path("c43")},
                   "md4all-DD": {42: Path("d42"), 43: Path("d43")}}
    compared = methods.comparisons(None, checkpoints, rows, replicates=300)  # type: ignore[arg-type]
    assert [(c["method"], c["baseline"], c["seed_list"]) for c in compared] == [
        ("Monodepth2 continued", "Monodepth2 (teacher)", [42, 43]), ("md4all-DD", "Monodepth2 continued", [42, 43])]
    dd = compared[1]["effects"]["adverse_mean"]
    assert dd["verdict"] == "resolved better" and dd["mean"] == pytest.approx(-0.02, abs=1e-9)
    mean = {"clear": {"abs_rel": 0.2}, "adverse_mean": {"abs_rel": 0.25}}
    result = {"comparisons": compared, "rows": {"Monodepth2 continued": mean},
              "bootstrap": {"replicates": 300, "level": 0.95}}
    text = "\n".join(methods.reading(result))
    assert "adverse-mean AbsRel -0.0200 [" in text and "(-8.0 % of the baseline's 0.2500), resolved better" in text
    assert "1 of 2 comparisons resolve an adverse-mean improvement: md4all-DD vs Monodepth2" in text
    table = "\n".join(methods.comparison_table(result))
    assert "| md4all-DD | Monodepth2 continued | 2 | -0.0200 [" in table and "✓" in table
    assert methods.forest_plot(compared, tmp_path / "forest.png", 2).stat().st_size > 1000
    from robustdepth.config import ConfigError

    with pytest.raises(ConfigError, match="no_such_row"):
        methods.table_rows(["no_such_row"])


def test_methods_mean_row_over_seeds() -> None:
    from robustdepth.bench.methods import mean_row

    def row(clear: float, adverse: float, s: float) -> dict:
        return {"clear": {"abs_rel": clear, "sq_rel": 1.0, "rmse": 5.0, "a1": 0.6},
                "adverse_mean": {"abs_rel": adverse, "sq_rel": 2.0, "rmse": 6.0, "a1": 0.5}, "s_per_step": s}

    out = mean_row({42: row(0.20, 0.30, 1.0), 43: row(0.22, 0.26, 2.0)})
    assert out["clear"]["abs_rel"] == pytest.approx(0.21) and out["adverse_mean"]["abs_rel"] == pytest.approx(0.28)
    assert out["gap_abs_rel"] == pytest.approx(0.07) and out["s_per_step"] == pytest.approx(1.5)
    assert out["seed_sd"]["adverse_mean_abs_rel"] == pytest.approx(0.02 * 2 ** 0.5)


def test_parallel_table_trains_each_chain_first_then_collects_without_retraining(
        protocol: BenchProtocol, tmp_path: Path) -> None:
    """``--jobs 2``: a seed-44 Syn2Real run waits for its chain (md4all-DD, the protocol's seed), the shared day
    histogram is written once by the parent, and the serial pass afterwards reuses every run."""
    from robustdepth.bench import methods

    assert methods.chain_keys("rosam") == methods.chain_keys("syn2real_ra") == {"md4all_dd"}
    assert methods.chain_keys("md4all_dd") == set() == methods.chain_keys(TEACHER)
    runs = tmp_path / "runs"
    methods.train_parallel(protocol, runs, [("syn2real_ra", 44), ("md2_continued", 42)], jobs=2)
    chain, seeded = runs / "md4all_dd" / "checkpoints" / "last.pt", runs / "syn2real_ra@seed44"
    assert chain.is_file() and (runs / "md2_continued" / "checkpoints" / "last.pt").is_file()
    assert chain.stat().st_mtime <= (seeded / "config.yaml").stat().st_mtime  # the chain finished first
    assert load_checkpoint(seeded / "checkpoints" / "last.pt")["config"]["train"]["seed"] == 44
    # run_folder names the folders run_row trains: a seed's own, a registered twin, the protocol seed's, the teacher's
    assert run_folder(protocol, runs, "syn2real_ra", 44) == seeded
    assert run_folder(protocol, runs, "syn2real_ra", 43) == runs / "syn2real_ra_seed43"
    assert run_folder(protocol, runs, "md4all_dd", protocol.seed) == runs / "md4all_dd"
    assert run_folder(protocol, runs, TEACHER) == runs / TEACHER
    assert len(list((runs / "day_histograms").glob("*.json"))) == 1
    stamps = {p: p.stat().st_mtime for p in runs.rglob("last.pt")}
    rows = methods.table_rows(["syn2real_ra"])
    trained = methods.train_table(protocol, runs, rows, seeds=[44])
    assert trained["Syn2Real-RA"][44][0] == seeded / "checkpoints" / "last.pt"
    assert {p: p.stat().st_mtime for p in runs.rglob("last.pt")} == stamps  # collected, not retrained


def test_a_killed_worker_restarts_its_runs_once_and_a_second_death_is_a_child_process_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The pool's scheduling without training: a fake pool whose chosen unit dies (BrokenProcessPool) n times."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool
    from types import SimpleNamespace

    from robustdepth.bench import methods
    from robustdepth.bench import protocol as bench_protocol

    def run(deaths: int) -> list[tuple[str, int]]:
        started: list[tuple[str, int]] = []
        left = {("md2_continued", 42): deaths}

        class Pool:
            def submit(self, fn, protocol, runs, key, seed):
                future: Future = Future()
                if left.get((key, seed), 0) > 0:
                    left[(key, seed)] -= 1
                    future.set_exception(BrokenProcessPool("a worker was killed"))
                else:
                    started.append((key, seed))
                    future.set_result((Path(key), None))
                return future

            def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
                pass

        monkeypatch.setattr(methods, "worker_pool", lambda jobs: Pool())
        monkeypatch.setattr(methods, "run_row", lambda *args, **kwargs: (Path("teacher"), None))
        monkeypatch.setattr(bench_protocol, "row_inputs", lambda *args, **kwargs: {})
        monkeypatch.setattr(bench_protocol, "row_config", lambda *args, **kwargs: None)
        methods.train_parallel(SimpleNamespace(seed=42), Path("runs"),  # type: ignore[arg-type]
                               [("md2_continued", 42), ("syn2real_ra", 43)], jobs=2)
        return started

    # killed once: restarted, and the seed-43 Syn2Real run still waited for its chain (md4all-DD, seed 42)
    started = run(deaths=1)
    assert sorted(started) == [("md2_continued", 42), ("md4all_dd", 42), ("syn2real_ra", 43)]
    assert started.index(("md4all_dd", 42)) < started.index(("syn2real_ra", 43))
    with pytest.raises(ChildProcessError, match=r"md2_continued \(seed 42\) died twice"):
        run(deaths=2)


def test_a_subset_table_records_the_subset_in_its_command() -> None:
    from robustdepth.bench.methods import subset_flags

    assert subset_flags({"subset_rows": ["md4all_dd", "rosam"], "subset_seeds": [42]}) == \
        " --rows md4all_dd rosam --seeds 42"
    assert subset_flags({"subset_rows": [], "subset_seeds": []}) == "" == subset_flags({})
