"""Monodepth2's depth decoder, with the same parameter names so original ``depth.pth`` files load."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Conv3x3", "ConvBlock", "DepthDecoder"]

NUM_CH_DEC = (16, 32, 64, 128, 256)


class Conv3x3(nn.Module):
    """3×3 convolution after 1-pixel reflection padding (keeps size, avoids zero-border artefacts)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(int(in_channels), int(out_channels), 3)

    def forward(self, x: Tensor) -> Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            return self.conv(self.pad(x))
        # Autocast runs reflection padding in fp32 (CPU), upcasting a bf16 activation for the pad and casting it
        # back for the conv. Padding only copies values, so it is exact in the input's own dtype: pad there, and
        # the conv (under the caller's autocast again) gets the same values without two full-size casts.
        with torch.autocast(x.device.type, enabled=False):
            x = self.pad(x)
        return self.conv(x)


class ConvBlock(nn.Module):
    """Conv3x3 followed by ELU (Monodepth2's decoder block; keys ``conv.conv.weight``)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv = Conv3x3(in_channels, out_channels)
        self.nonlin = nn.ELU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlin(self.conv(x))


class DepthDecoder(nn.Module):
    """U-Net decoder with skips: 5 encoder levels → sigmoid disparity at each requested scale.

    For i = 4 … 0: ``upconv(i,0)``, nearest ×2 upsampling, concat with encoder level i−1 (if i > 0),
    ``upconv(i,1)``; at scales in ``scales`` a ``dispconv`` + sigmoid gives the disparity at
    1/2^i of the input resolution. Modules live in ``self.decoder`` (a ModuleList, in Monodepth2's
    order: upconv(4,0), upconv(4,1), …, upconv(0,1), dispconv(s) for s in scales) so its keys match.
    """

    def __init__(self, num_ch_enc: Sequence[int], scales: Sequence[int] = (0, 1, 2, 3)):
        super().__init__()
        if len(num_ch_enc) != 5:
            raise ValueError(f"num_ch_enc must list 5 encoder channel counts, got {list(num_ch_enc)}")
        bad = [s for s in scales if s not in range(5)]
        if bad or len(scales) == 0 or len(set(scales)) != len(scales):
            raise ValueError(f"scales must be distinct values in 0..4 (at least one), got {list(scales)}")
        self.num_ch_enc = [int(c) for c in num_ch_enc]
        self.num_ch_dec = list(NUM_CH_DEC)
        self.scales = [int(s) for s in scales]
        upconvs: dict[tuple[int, int], ConvBlock] = {}
        for i in range(4, -1, -1):
            ch_in = self.num_ch_enc[-1] if i == 4 else self.num_ch_dec[i + 1]
            upconvs[(i, 0)] = ConvBlock(ch_in, self.num_ch_dec[i])
            ch_in = self.num_ch_dec[i] + (self.num_ch_enc[i - 1] if i > 0 else 0)
            upconvs[(i, 1)] = ConvBlock(ch_in, self.num_ch_dec[i])
        dispconvs = {s: Conv3x3(self.num_ch_dec[s], 1) for s in self.scales}
        self.decoder = nn.ModuleList([*upconvs.values(), *dispconvs.values()])
        # Index maps into self.decoder, so forward can address blocks by (i, j) and scale.
        self._upconv_index = {key: n for n, key in enumerate(upconvs)}
        self._dispconv_index = {s: len(upconvs) + n for n, s in enumerate(dispconvs)}
        self.sigmoid = nn.Sigmoid()

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Returns ``(disps, feats)``; entry n of each belongs to scale ``self.scales[n]``.

        ``disps[n]``: B×1×H/2^s×W/2^s sigmoid disparity in (0, 1); ``feats[n]``: the decoder feature
        map after ``upconv(s,1)`` (num_ch_dec[s] channels) at the same resolution, for feature losses.
        """
        if len(features) != 5:
            raise ValueError(f"DepthDecoder expects the 5 encoder feature levels, got {len(features)}")
        disps: dict[int, Tensor] = {}
        feats: dict[int, Tensor] = {}
        x = features[-1]
        for i in range(4, -1, -1):
            x = self.decoder[self._upconv_index[(i, 0)]](x)
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            if i > 0:
                x = torch.cat([x, features[i - 1]], dim=1)
            x = self.decoder[self._upconv_index[(i, 1)]](x)
            if i in self._dispconv_index:
                feats[i] = x
                disps[i] = self.sigmoid(self.decoder[self._dispconv_index[i]](x))
        return [disps[s] for s in self.scales], [feats[s] for s in self.scales]
