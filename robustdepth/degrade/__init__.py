"""Adverse-image synthesis: image-space weather/sensor translators, the per-sample sampler, a learned hook.

``translate(images, condition, severity, generator=None, depth=None)`` turns clear ``B×3×H×W`` images in
[0, 1] into night / rain / fog / snow / noise / blur / low_exposure versions. :class:`DegradeSampler` picks a
condition per training sample (md4all's overwrite rule). The learned one-step diffusion translator lives in
:mod:`robustdepth.degrade.learned` (optional extra ``robustdepth[diffusion]``, imported only on demand) and the
gallery renderer in :mod:`robustdepth.degrade.gallery`.
"""

from robustdepth.degrade.sampler import DegradeRule, DegradeSampler
from robustdepth.degrade.translators import (
    CONDITIONS,
    TRANSLATORS,
    WEATHER_CONDITIONS,
    get_translator,
    image_position_depth,
    translate,
)

__all__ = [
    "CONDITIONS",
    "TRANSLATORS",
    "WEATHER_CONDITIONS",
    "DegradeRule",
    "DegradeSampler",
    "get_translator",
    "image_position_depth",
    "translate",
]
