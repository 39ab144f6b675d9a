"""The velocity term against an independent computation: each source's predicted translation norm is compared with
*its own* ground-truth magnitude (a swapped frame key changes the value), and the gradient pulls the norm towards it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from robustdepth.data.base import translation_key
from robustdepth.losses.velocity import VelocityConfig, VelocityLoss


def _ctx(translations: dict[int, torch.Tensor], gt: dict[int, torch.Tensor]) -> SimpleNamespace:
    batch = {translation_key(f): v for f, v in gt.items()}
    cfg = SimpleNamespace(data=SimpleNamespace(dataset="world"))
    return SimpleNamespace(device=torch.device("cpu"), source_ids=list(translations), batch=batch, cfg=cfg,
                           pose=lambda f: SimpleNamespace(translation=translations[f]))


def test_each_source_is_compared_with_its_own_magnitude_and_pulled_towards_it() -> None:
    term = VelocityLoss(VelocityConfig(weight=1.0), None)
    t = {-1: torch.tensor([[0.3, 0.0, 0.4], [0.0, 0.6, 0.8]], requires_grad=True),  # norms 0.5, 1.0
         1: torch.tensor([[1.2, 0.0, 1.6], [0.0, 0.0, 0.2]], requires_grad=True)}  # norms 2.0, 0.2
    gt = {-1: torch.tensor([0.4, 1.5]), 1: torch.tensor([2.5, 0.1])}
    loss = term(_ctx(t, gt))
    want = ((0.5 - 0.4) / 2 + (1.5 - 1.0) / 2 + (2.5 - 2.0) / 2 + (0.2 - 0.1) / 2) / 2  # mean over sources
    assert float(loss) == pytest.approx(want, abs=1e-6)
    swapped = term(_ctx(t, {-1: gt[1], 1: gt[-1]}))
    assert float(swapped) != pytest.approx(want, abs=1e-3)
    loss.backward()
    norm_grad = (t[-1].grad * t[-1]).sum(-1)  # d loss / d scale of each translation
    assert norm_grad[0] > 0 and norm_grad[1] < 0  # too long → shrink; too short → grow


def test_a_dataset_without_magnitudes_is_a_clear_error() -> None:
    term = VelocityLoss(VelocityConfig(weight=1.0), None)
    with pytest.raises(KeyError, match=r"translation_norm:-1"):
        term(_ctx({-1: torch.ones(1, 3)}, {}))
