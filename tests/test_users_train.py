"""Validation during training and best-checkpoint selection (robustdepth/training/validation.py), the
folder check (robustdepth/data/folder_check.py) and a fast command line (robustdepth/cli_lazy.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from robustdepth.checkpoint import load_checkpoint
from robustdepth.cli import main
from robustdepth.config import ConfigError
from robustdepth.configure import load_config
from robustdepth.training.trainer import train
from robustdepth.training.validation import (
    Validator,
    is_better,
    parse_best_metric,
    selection_value,
    validation_scalars,
)
from tests.conftest import corridor_overrides, write_corridor_sequence

REPO = Path(__file__).resolve().parents[1]


def _summary(**rows: float) -> dict:
    return {name: {"abs_rel": v, "sq_rel": 2 * v, "rmse": 3 * v, "rmse_log": v, "a1": 1 - v, "a2": 1.0, "a3": 1.0}
            for name, v in rows.items()} | {"counts": {name: 1 for name in rows}}


# ------------------------------------------------------------------------------------------ selection rules


def test_auto_selects_the_adverse_mean_when_the_split_has_adverse_conditions() -> None:
    row, metric = parse_best_metric("auto")
    assert selection_value(_summary(clear=0.1, night=0.4, fog=0.2, all=0.23), row, metric) == \
        ("adverse", pytest.approx(0.3))
    assert selection_value(_summary(clear=0.1, all=0.1), row, metric) == ("all", pytest.approx(0.1))


def test_named_rows_and_metric_direction() -> None:
    assert selection_value(_summary(clear=0.1, night=0.4, all=0.2), *parse_best_metric("night/a1")) == \
        ("night", pytest.approx(0.6))
    assert is_better(0.2, 0.3, "abs_rel") and not is_better(0.3, 0.2, "abs_rel")
    assert is_better(0.9, 0.8, "a1") and not is_better(0.8, 0.9, "a1")
    assert is_better(5.0, None, "rmse") and not is_better(0.3, 0.3, "abs_rel")


@pytest.mark.parametrize("spec", ["night", "night/absrel", "/abs_rel"])
def test_bad_best_metric_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="train.best_metric"):
        parse_best_metric(spec)


def test_missing_rows_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="no adverse condition"):
        selection_value(_summary(clear=0.1, all=0.1), "adverse", "abs_rel")
    with pytest.raises(ConfigError, match="no row 'snow'"):
        selection_value(_summary(clear=0.1, all=0.1), "snow", "abs_rel")


def test_scalars_per_condition_and_adverse_mean() -> None:
    scalars = validation_scalars(_summary(clear=0.1, night=0.4, rain=0.2, all=0.23))
    assert scalars["val/night/abs_rel"] == 0.4 and scalars["val/clear/a1"] == pytest.approx(0.9)
    assert scalars["val/adverse/abs_rel"] == pytest.approx(0.3)


# ------------------------------------------------------------------------------------------- in training


@pytest.fixture(scope="module")
def seq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_corridor_sequence(tmp_path_factory.mktemp("val") / "seq", frames=8)


def _cfg(seq: Path, **extra: object):
    base = {"optim.max_steps": 3, "train.val_max_frames": 2, "eval.batch_size": 2, "data.frame_ids": "[0,-1,1]"}
    base.update(extra)
    return load_config("monodepth2", corridor_overrides(seq, **base))


def test_keep_best_keeps_the_step_with_the_best_validation(seq: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    scripted = iter([0.5, 0.3, 0.4])  # step 2 is the best; step 3 (the last) is worse
    logged: list[tuple[int, dict]] = []
    monkeypatch.setattr(Validator, "run", lambda self, net, device: _summary(clear=next(scripted), all=0.0))
    real_after = Validator.after_step

    def spy(self, step, net, device, log, payload):
        return real_after(self, step, net, device, lambda s, k: logged.append((k, s)), payload)

    monkeypatch.setattr(Validator, "after_step", spy)
    train(_cfg(seq, **{"train.val_every": 1, "train.keep_best": "true", "train.best_metric": "clear/abs_rel"}),
          run_dir=tmp_path)
    assert json.loads((tmp_path / "checkpoints" / "best.json").read_text()) == \
        {"step": 2, "metric": "clear/abs_rel", "value": 0.3}
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["step"] == 2
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["step"] == 3
    assert [step for step, _ in logged] == [1, 2, 3]
    assert logged[1][1]["val/clear/abs_rel"] == 0.3 and logged[1][1]["val/selection/clear/abs_rel"] == 0.3


def test_validation_leaves_training_bit_identical_and_scores_the_real_net(seq: Path, tmp_path: Path) -> None:
    plain = train(_cfg(seq), run_dir=tmp_path / "plain")
    validated = train(_cfg(seq, **{"train.val_every": 1, "train.keep_best": "true"}), run_dir=tmp_path / "val")
    a, b = load_checkpoint(plain)["models"]["depth"], load_checkpoint(validated)["models"]["depth"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # no RNG drawn, train mode restored, BN stats untouched
    best = json.loads((tmp_path / "val" / "checkpoints" / "best.json").read_text())
    assert best["metric"] == "all/abs_rel" and 0 < best["value"] < 5  # a folder has no adverse condition
    events = list((tmp_path / "val" / "tensorboard").iterdir())
    assert events


def test_keep_best_without_validation_is_refused(seq: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="train.val_every"):
        train(_cfg(seq, **{"train.keep_best": "true"}), run_dir=tmp_path)


# ------------------------------------------------------------------------------------------- data check


def test_data_check_folder_reports_mixed_sizes_and_missing_gt(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    from tests.test_users_eval import write_folder

    root = write_folder(tmp_path / "seq", [(40, 120), (60, 80), (40, 120)])
    assert main(["data", "check", str(root), "--dataset", "folder"]) == 0
    out = capsys.readouterr().out
    assert "mixed sizes" in out and "no problems found" in out
    (root / "depth" / "000001.npy").unlink()
    assert main(["data", "check", str(root), "--dataset", "folder", "--condition", "night"]) == 1
    out = capsys.readouterr().out
    assert "MISSING  seq: GT depth: 1 of 3" in out and "'night'" in out
    (root / "intrinsics.txt").unlink()
    assert main(["data", "check", str(root), "--dataset", "folder"]) == 1
    assert "data.intrinsics" in capsys.readouterr().out
    assert main(["data", "check", str(root), "--dataset", "folder", "--intrinsics", "70,70,60,20"]) == 1


# ----------------------------------------------------------------------------------------- fast start


def _python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                          check=True).stdout


def test_help_and_argument_errors_import_no_torch() -> None:
    code = ("import sys\nfrom robustdepth.cli import main\n"
            "for argv in (['--help'], ['eval', '--help'], ['predict'], ['train', 'x', '--bogus']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('TORCH' if 'torch' in sys.modules else 'NO_TORCH')\n")
    assert _python(code).strip().endswith("NO_TORCH")


def test_top_level_help_lists_every_extension_command_without_importing_it(
        capsys: pytest.CaptureFixture[str]) -> None:
    from robustdepth.cli_lazy import COMMAND_HELP

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(name in out for name, _ in COMMAND_HELP.values())


def test_extension_command_still_parses_its_own_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as err:
        main(["data", "check", "--help"])
    assert err.value.code == 0 and "folder" in capsys.readouterr().out


@pytest.mark.parametrize("training", [True, False])
def test_validation_restores_the_networks_mode_and_uses_eval_batchnorm(seq: Path, tmp_path: Path,
                                                                       training: bool) -> None:
    from robustdepth.networks import DepthNet

    validator = Validator(_cfg(seq, **{"train.val_every": 1}), tmp_path)
    torch.manual_seed(0)
    net = DepthNet(18, scales=[0, 1, 2, 3]).train(training)
    seen: list[bool] = []
    net.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    rng = torch.get_rng_state()
    summary = validator.run(net, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), rng)  # draws nothing from the global generator
    assert net.training is training and seen and not any(seen)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # BN running stats untouched
    assert summary["counts"]["all"] == 2
