"""Per-sample choice of a degradation for the data pipeline (md4all / ACDepth translation probabilities).

md4all's nuScenes rule is "day→rain with p = 0.5, then day→night with p = 0.33, which overwrites it": each rule
is tried independently *in order*, and a later rule that fires replaces an earlier one. The effective split is
therefore P(night) = 0.33, P(rain) = 0.5 · 0.67 ≈ 0.335, P(clear) ≈ 0.335 — about ⅓ each — and "rain ∧ night"
never occurs. :class:`DegradeSampler` implements exactly these overwrite semantics for any ordered rule list.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from robustdepth.degrade.translators import get_translator, translate


@dataclass(frozen=True)
class DegradeRule:
    """One rule: apply ``condition`` with ``probability``, severity drawn uniformly in ``severity``."""

    condition: str
    probability: float
    severity: tuple[float, float] = (1.0, 1.0)

    def __post_init__(self) -> None:
        get_translator(self.condition)  # unknown names fail here, listing the valid ones
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability of {self.condition!r} must lie in [0, 1], got {self.probability}")
        lo, hi = self.severity
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"severity range of {self.condition!r} must satisfy 0 ≤ lo ≤ hi ≤ 1, "
                             f"got {self.severity}")


RuleLike = DegradeRule | tuple[str, float, tuple[float, float]] | tuple[str, float]


def _as_rule(rule: RuleLike) -> DegradeRule:
    if isinstance(rule, DegradeRule):
        return rule
    if isinstance(rule, Sequence) and len(rule) in (2, 3):
        condition, probability, *rest = rule
        severity = tuple(rest[0]) if rest else (1.0, 1.0)
        if len(severity) != 2:
            raise ValueError(f"severity range of {condition!r} must be (lo, hi), got {rest[0]}")
        return DegradeRule(str(condition), float(probability), (float(severity[0]), float(severity[1])))
    raise TypeError(f"a degradation rule must be DegradeRule or (condition, probability[, (lo, hi)]), got {rule!r}")


class DegradeSampler:
    """Choose, per sample, which degradation (if any) applies, using an ordered list of rules.

    Every rule draws its own Bernoulli trial, in list order; when several fire, the **last** one wins (it
    overwrites the earlier ones), as in md4all/ACDepth. Each call consumes the same number of random numbers
    (two per rule) whatever fires, so a seeded pipeline stays reproducible when probabilities change.

    Args:
        rules: ordered ``(condition, probability, (severity_lo, severity_hi))`` tuples or :class:`DegradeRule`.
        clear_label: the label :meth:`apply` returns for a sample left clear.
    """

    def __init__(self, rules: Iterable[RuleLike], clear_label: str = "clear") -> None:
        self.rules: tuple[DegradeRule, ...] = tuple(_as_rule(r) for r in rules)
        self.clear_label = clear_label

    @classmethod
    def md4all_nuscenes(cls, severity: tuple[float, float] = (1.0, 1.0)) -> DegradeSampler:
        """md4all's nuScenes rule: rain p = 0.5 first, then night p = 0.33 overwriting it (≈⅓ each)."""
        return cls([("rain", 0.5, severity), ("night", 0.33, severity)])

    @classmethod
    def md4all_robotcar(cls, severity: tuple[float, float] = (1.0, 1.0)) -> DegradeSampler:
        """md4all's RobotCar rule: night with p = 0.5."""
        return cls([("night", 0.5, severity)])

    def effective_probabilities(self) -> dict[str, float]:
        """The probability of each outcome after overwriting (analytic; ``clear_label`` for no translation)."""
        probs: dict[str, float] = {}
        for i, rule in enumerate(self.rules):
            survives = 1.0
            for later in self.rules[i + 1:]:
                survives *= 1.0 - later.probability
            probs[rule.condition] = probs.get(rule.condition, 0.0) + rule.probability * survives
        probs[self.clear_label] = max(0.0, 1.0 - sum(probs.values()))
        return probs

    def sample(self, generator: torch.Generator | None = None) -> tuple[str, float] | None:
        """Return ``(condition, severity)`` for one sample, or ``None`` when it stays clear."""
        chosen: tuple[str, float] | None = None
        for rule in self.rules:
            fire, position = torch.rand(2, generator=generator).tolist()
            if fire < rule.probability:
                lo, hi = rule.severity
                chosen = (rule.condition, lo + (hi - lo) * position)
        return chosen

    def apply(self, image: torch.Tensor, generator: torch.Generator | None = None,
              depth: torch.Tensor | None = None) -> tuple[torch.Tensor, str]:
        """Degrade one image (``1×3×H×W`` or ``3×H×W``) per :meth:`sample`; return it and its condition label.

        The label is the condition's name (e.g. ``"night"``) or ``clear_label``; a clear image is returned
        unchanged (the same tensor). The clean frame is not modified in place.
        """
        squeeze = image.ndim == 3
        batch = image.unsqueeze(0) if squeeze else image
        if batch.ndim != 4 or batch.shape[0] != 1:
            raise ValueError(f"apply expects one image 1×3×H×W or 3×H×W, got shape {tuple(image.shape)}")
        choice = self.sample(generator)
        if choice is None:
            return image, self.clear_label
        condition, severity = choice
        if depth is not None and depth.ndim == 2:
            depth = depth.reshape(1, 1, *depth.shape)
        out = translate(batch, condition, severity, generator=generator, depth=depth)
        return (out[0] if squeeze else out), condition

    def __repr__(self) -> str:
        rules = ", ".join(f"{r.condition}:p={r.probability}:s={r.severity}" for r in self.rules)
        return f"DegradeSampler([{rules}])"
