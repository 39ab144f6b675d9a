"""Training: learning happens, resume is exact, bad steps never touch the weights, DDP works,
and checkpoints from elsewhere are refused with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from robustdepth.checkpoint import CheckpointError, atomic_save, load_checkpoint
from robustdepth.configure import load_config
from robustdepth.data.base import color_key
from robustdepth.training.trainer import Trainer, TrainingDiverged, train
from tests.conftest import corridor_overrides, run_two_processes

REPO = Path(__file__).resolve().parents[1]


def _cfg(root: Path, **extra: object):
    return load_config("monodepth2", corridor_overrides(root, **extra))


@pytest.mark.slow
def test_training_lowers_photometric_loss(corridor: Path, tmp_path: Path) -> None:
    cfg = _cfg(corridor, **{"optim.max_steps": 100, "optim.lr": 2e-4, "optim.batch_size": 4})
    trainer = Trainer(cfg, run_dir=tmp_path)
    losses = [trainer.train_step(batch)["loss/photometric"] for batch in trainer._batches()]
    first, last = sum(losses[:15]) / 15, sum(losses[-15:]) / 15
    assert len(losses) == 100
    assert last < 0.9 * first, f"photometric loss {first:.4f} -> {last:.4f}: no clear learning"


def test_resume_is_bit_exact(corridor: Path, tmp_path: Path) -> None:
    # colour jitter and flips on, two sources, automask noise: all must replay identically
    cfg = _cfg(corridor, **{"optim.max_steps": 6, "augment.color_jitter_p": 0.5})
    straight = train(cfg, run_dir=tmp_path / "a")
    train(cfg, run_dir=tmp_path / "b", stop_at=3)
    assert load_checkpoint(tmp_path / "b")["step"] == 3
    resumed = train(cfg, run_dir=tmp_path / "b", resume=tmp_path / "b")
    a, b = load_checkpoint(straight), load_checkpoint(resumed)
    assert a["step"] == b["step"] == 6
    for net in ("depth", "pose"):
        for key, value in a["models"][net].items():
            assert torch.equal(value, b["models"][net][key]), f"{net}.{key} differs after resume"
    assert a["optimizer"]["state"][0]["exp_avg"].equal(b["optimizer"]["state"][0]["exp_avg"])


def test_non_finite_step_is_skipped_then_run_stops(corridor: Path, tmp_path: Path) -> None:
    cfg = _cfg(corridor, **{"optim.max_steps": 10, "train.max_bad_steps": 2})
    trainer = Trainer(cfg, run_dir=tmp_path)
    batch = next(iter(trainer._batches()))
    before = {k: v.clone() for k, v in trainer.models.state_dict().items()}
    batch[color_key(0)] = torch.full_like(batch[color_key(0)], float("nan"))
    logs = trainer.train_step(batch)
    assert logs["skipped_steps"] == 1 and trainer.step == 1
    for key, value in trainer.models.state_dict().items():
        if value.is_floating_point():
            assert torch.equal(value, before[key]), f"{key} changed on a skipped step"
    with pytest.raises(TrainingDiverged, match="2 consecutive steps") as err:
        trainer.train_step(batch)
    saved = load_checkpoint(str(err.value).split("weights are in ")[1].split(". ")[0])
    assert saved["skipped_steps"] == 0 and saved["step"] == 0  # the last sane state: here the run's start
    for key, value in saved["models"]["depth"].items():
        assert torch.equal(value, before[f"depth.{key}"]), f"saved {key} is not the last good weight"



@pytest.mark.slow
def test_two_process_data_parallel_run(corridor: Path, tmp_path: Path) -> None:
    proc = run_two_processes("ddp_worker.py", str(corridor), str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert r0["world"] == 2
    # each rank saw half the data per epoch
    assert r0["samples"] == (22 // 2) // 2
    params = [k for k, v in r0["final"].items() if v.is_floating_point() and "running" not in k]
    for key in params:
        assert torch.equal(r0["final"][key], r1["final"][key]), f"{key} differs between ranks"
    assert any(not torch.equal(r0["final"][k], r0["initial"][k]) for k in params), "nothing was trained"
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()  # rank 0 saved


def test_foreign_checkpoints_are_refused(tmp_path: Path) -> None:
    pickled = tmp_path / "pickled.pt"
    torch.save({"format": "x", "model": torch.nn.Linear(2, 2)}, pickled)  # a pickled module
    with pytest.raises(CheckpointError, match=r"refusing to load .*pickled Python objects"):
        load_checkpoint(pickled)
    bare = tmp_path / "depth.pth"
    torch.save({"decoder.0.conv.conv.weight": torch.zeros(1)}, bare)
    with pytest.raises(CheckpointError, match=r"not a robustdepth checkpoint.*bare state_dict"):
        load_checkpoint(bare)
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(truncated)
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_more_steps_extend_a_run_other_changes_do_not() -> None:
    """Asking a finished run for more optim.max_steps continues it; fewer steps or another lr is another run."""
    from robustdepth.config import to_dict
    from robustdepth.training.stages import config_differences

    stored = to_dict(load_config("monodepth2", ["optim.max_steps=600"]))
    assert config_differences(stored, load_config("monodepth2", ["optim.max_steps=2400"])) == []
    assert config_differences(stored, load_config("monodepth2", ["optim.max_steps=300"])) == ["optim.max_steps"]
    assert config_differences(stored, load_config("monodepth2", ["optim.max_steps=2400", "optim.lr=0.001"])) == [
        "optim.lr"]


def test_failed_checkpoint_write_names_the_file_and_keeps_the_old_one(tmp_path: Path, monkeypatch) -> None:
    """A write that fails midway (torch reports a full disk as RuntimeError) leaves the previous file intact."""
    path = tmp_path / "last.pt"
    atomic_save({"step": 1}, path)

    def full_disk(obj, fh):
        fh.write(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 126824896 vs 126824784")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match=r"could not write .*last\.pt.*MiB free"):
        atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_resolve_chain_wires_teacher_day_model_and_histogram_by_the_stated_rules(tmp_path: Path) -> None:
    """One set of chain rules for pipeline, benchmarks and demo (robustdepth.training.stages.resolve_chain)."""
    from robustdepth.config import ConfigError
    from robustdepth.training.stages import resolve_chain

    teacher, root, day = tmp_path / "teacher.pt", tmp_path / "root.pt", tmp_path / "day.pt"
    asked: list[Path] = []

    def histogram(source: Path) -> Path:
        asked.append(source)
        return tmp_path / f"hist_{source.stem}.json"

    cfg = load_config("syn2real_ra")  # teacher + Φ_day (stage root) + KL prior
    resolve_chain(cfg, "s", teacher=teacher, root=root, histogram=histogram)
    assert cfg.providers.teacher.checkpoint == str(teacher) and cfg.model.init_checkpoint == str(teacher)
    assert cfg.providers.day_model.checkpoint == str(root)  # stage root: the chain's first model, not the teacher
    assert asked == [root] and cfg.losses.syn2real_kl.prior_path == str(tmp_path / "hist_root.json")

    staged = load_config("syn2real_ra", ["providers.day_model.stage=teacher"])
    resolve_chain(staged, "s", teacher=teacher, root=root, histogram=histogram)
    assert staged.providers.day_model.checkpoint == str(teacher) and asked[-1] == teacher

    given = load_config("syn2real_ra", [f"model.init_checkpoint={root}"])
    resolve_chain(given, "s", teacher=teacher, root=root, day=day, histogram=histogram)
    assert given.model.init_checkpoint == str(root)  # an initialisation the recipe set is kept
    assert given.providers.day_model.checkpoint == str(day) and asked[-1] == day

    plain = load_config("md4all_dd")  # no day model, no KL: only the teacher is wired
    resolve_chain(plain, "s", teacher=teacher, histogram=histogram)
    assert plain.providers.day_model.checkpoint in (None, "") and len(asked) == 3
    with pytest.raises(ConfigError, match="distils a frozen teacher"):
        resolve_chain(load_config("md4all_dd"), "s", teacher=None, histogram=histogram)
    with pytest.raises(ConfigError, match="no teacher provider"):
        resolve_chain(load_config("monodepth2"), "s", teacher=teacher, histogram=histogram)
    with pytest.raises(ConfigError, match="no day_model provider"):
        resolve_chain(load_config("md4all_dd"), "s", teacher=teacher, day=day, histogram=histogram)


def test_train_stops_its_persistent_loader_workers(corridor: Path, tmp_path: Path) -> None:
    """A process that trains several runs in a row (benchmarks, demo) must not keep each run's worker processes:
    they hold the dataset and its frame cache (a benchmark process was killed for memory by the leak)."""
    import multiprocessing

    before = set(multiprocessing.active_children())
    cfg = load_config("monodepth2", corridor_overrides(corridor, **{"optim.max_steps": 2, "data.num_workers": 1}))
    assert train(cfg, run_dir=tmp_path / "run") is not None
    assert set(multiprocessing.active_children()) - before == set()
