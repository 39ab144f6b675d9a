"""Learned weather translator hook: a one-step diffusion image-to-image model (img2img-turbo / CycleGAN-Turbo style).

The model follows CycleGAN-Turbo (Parmar et al., 2024, ``GaParmar/img2img-turbo``), the generator ACDepth builds
its night/rain training data with (docs/methods.md § ACDepth):

* SD-Turbo components: a VAE (``AutoencoderKL``), a ``UNet2DConditionModel`` and a CLIP text encoder/tokenizer
  for one prompt per condition ("driving in the night", … and "driving in the day" for the clear source);
* LoRA adapters (``peft``) on the UNet (rank 128 by default, as img2img-turbo) and on the VAE *decoder* (rank 4);
* zero-initialised 1×1 skip convolutions from each VAE encoder stage to the decoder stage of the same resolution,
  so fine detail of the input survives the 8× latent bottleneck (pixel alignment is what the depth methods need);
* a single denoising step at timestep 999 with the DDPM scheduler: the input's latent is treated as fully
  noised and the predicted clean latent ``x0 = (z − √(1−ᾱ)·ε̂)/√ᾱ`` is decoded (``DDPMScheduler.step`` with one
  inference step computes exactly this).

Differences from img2img-turbo, on purpose: one VAE-decoder adapter shared by both directions and all conditions
(the prompt carries the direction; img2img-turbo keeps one VAE adapter per direction), and the skip convolutions
are trained directly rather than through LoRA.

Nothing is ever downloaded: :meth:`OneStepTranslator.from_pretrained` reads the standard diffusers folder layout
from a local directory; :meth:`OneStepTranslator.build_tiny` builds a random-weight model from configs for tests.
Training at full size (SD-Turbo, 512² crops, ~25k steps) is a GPU job; the loop is the same at any size.
The optional dependencies are ``diffusers``, ``peft`` and ``transformers`` (``pip install robustdepth[diffusion]``).
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach the hub: weights come from local directories only

try:  # optional extra: robustdepth[diffusion]
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from peft import LoraConfig, inject_adapter_in_model
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer, CLIPVisionModel
except ImportError as error:  # pragma: no cover - exercised only without the extra
    _IMPORT_ERROR: ImportError | None = error
else:
    _IMPORT_ERROR = None

from safetensors.torch import load_file, save_file

LOGGER = logging.getLogger(__name__)

SOURCE = "clear"
DEFAULT_PROMPTS: dict[str, str] = {
    SOURCE: "driving in the day",
    "night": "driving in the night",
    "rain": "driving in heavy rain",
    "fog": "driving in dense fog",
    "snow": "driving in snow",
}
# img2img-turbo's LoRA targets (cyclegan_turbo): attention projections, resnet convs, feed-forward layers.
UNET_LORA_TARGETS = ["to_k", "to_q", "to_v", "to_out.0", "conv", "conv1", "conv2", "conv_shortcut", "conv_out",
                     "proj_in", "proj_out", "ff.net.2", "ff.net.0.proj"]
VAE_DECODER_LORA_TARGETS = r"decoder\..*(conv1|conv2|conv_in|conv_shortcut|conv|conv_out|to_k|to_q|to_v|to_out\.0)"
ADAPTER_FILE = "translator_adapters.safetensors"
SUBFOLDERS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def require_diffusion_extra() -> None:
    """Raise a clear ``ImportError`` when diffusers / peft / transformers are not installed."""
    if _IMPORT_ERROR is not None:
        raise ImportError(f"the learned translator needs diffusers, peft and transformers ({_IMPORT_ERROR}); "
                          "install them with: pip install robustdepth[diffusion]") from _IMPORT_ERROR


# ------------------------------------------------------------------------------------------ tiny configs
TINY_CONFIG: dict[str, Any] = {
    "vae": {"in_channels": 3, "out_channels": 3, "latent_channels": 4, "block_out_channels": [16, 32],
            "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
            "layers_per_block": 1, "norm_num_groups": 8, "sample_size": 32},
    "unet": {"in_channels": 4, "out_channels": 4, "block_out_channels": [32, 64], "layers_per_block": 1,
             "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"],
             "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"], "cross_attention_dim": 32,
             "attention_head_dim": 8, "norm_num_groups": 8, "sample_size": 16},
    "text_encoder": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 32, "projection_dim": 32},
    "scheduler": {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                  "beta_schedule": "scaled_linear", "clip_sample": False, "prediction_type": "epsilon"},
    "unet_rank": 8,
    "vae_rank": 4,
    "seed": 0,
}


def _byte_level_tokenizer(max_length: int) -> CLIPTokenizer:
    """A character-level CLIP tokenizer (byte-level alphabet, no merges): tiny, but the real class and rules."""
    from tokenizers import pre_tokenizers

    chars = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for token in ["<|startoftext|>", "<|endoftext|>", *chars, *(c + "</w>" for c in chars)]:
        vocab.setdefault(token, len(vocab))
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def _merge(base: dict[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in (override or {}).items():
        if key not in merged:
            raise KeyError(f"unknown tiny-translator config key {key!r}; valid keys: {', '.join(merged)}")
        if isinstance(merged[key], dict):
            merged[key].update(value)
        else:
            merged[key] = value
    return merged


def tiny_components(config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Random-weight ``vae, unet, text_encoder, tokenizer, scheduler`` from :data:`TINY_CONFIG` (+ overrides).

    The same classes as SD-Turbo, only small; ``save_pretrained`` on each gives the standard folder layout.
    """
    require_diffusion_extra()
    cfg = _merge(TINY_CONFIG, config)
    torch.manual_seed(int(cfg["seed"]))
    tokenizer = _byte_level_tokenizer(cfg["text_encoder"]["max_position_embeddings"])
    text_cfg = CLIPTextConfig(vocab_size=len(tokenizer), bos_token_id=0, eos_token_id=1, pad_token_id=1,
                              **cfg["text_encoder"])
    return {"vae": AutoencoderKL(**cfg["vae"]), "unet": UNet2DConditionModel(**cfg["unet"]),
            "text_encoder": CLIPTextModel(text_cfg), "tokenizer": tokenizer,
            "scheduler": DDPMScheduler(**cfg["scheduler"])}


# ------------------------------------------------------------------------------------------- translator
class OneStepTranslator(nn.Module):
    """One-step diffusion translator clear ↔ {night, rain, fog, snow}, CycleGAN-Turbo style.

    Build it with :meth:`from_pretrained` (a local SD-Turbo-layout directory) or :meth:`build_tiny` (tests).
    Only the LoRA adapters and the skip convolutions are trainable; everything else is frozen.

    Args:
        vae, unet, text_encoder, tokenizer, scheduler: the diffusers/transformers components.
        unet_rank: LoRA rank on the UNet (img2img-turbo: 128).
        vae_rank: LoRA rank on the VAE decoder (img2img-turbo: 4).
        prompts: condition name → text prompt; must contain :data:`SOURCE` ("clear").
    """

    def __init__(self, vae: AutoencoderKL, unet: UNet2DConditionModel, text_encoder: CLIPTextModel,
                 tokenizer: CLIPTokenizer, scheduler: DDPMScheduler, unet_rank: int = 128, vae_rank: int = 4,
                 prompts: Mapping[str, str] | None = None) -> None:
        require_diffusion_extra()
        super().__init__()
        self.vae, self.unet, self.text_encoder = vae, unet, text_encoder
        self.tokenizer, self.scheduler = tokenizer, scheduler
        self.prompts = dict(DEFAULT_PROMPTS if prompts is None else prompts)
        if SOURCE not in self.prompts:
            raise ValueError(f"prompts must include the source condition {SOURCE!r}, got {sorted(self.prompts)}")
        self.unet_rank, self.vae_rank = int(unet_rank), int(vae_rank)
        for module in (vae, unet, text_encoder):
            module.requires_grad_(False)
        self._add_lora()
        self.skip_convs = self._make_skip_convs()
        self._skip_activations: list[torch.Tensor] = []
        self._skips_active = False
        self._install_skip_hooks()
        # One inference step: timestep T−1 = 999, previous timestep −1 → ᾱ_prev = 1, so the step returns x0.
        # Custom timesteps [T−1] work whatever the config's timestep_spacing ("leading" would give [0]).
        self.timestep = int(self.scheduler.config.num_train_timesteps) - 1
        self.scheduler.set_timesteps(timesteps=[self.timestep])
        self._prompt_cache: dict[tuple[str, str, torch.dtype], torch.Tensor] = {}

    # ------------------------------------------------------------------------------------ construction
    def _add_lora(self) -> None:
        """Inject LoRA (gaussian init, α = rank so the scale is 1, as img2img-turbo) into UNet and VAE decoder."""
        unet_cfg = LoraConfig(r=self.unet_rank, lora_alpha=self.unet_rank, init_lora_weights="gaussian",
                              target_modules=UNET_LORA_TARGETS)
        vae_cfg = LoraConfig(r=self.vae_rank, lora_alpha=self.vae_rank, init_lora_weights="gaussian",
                             target_modules=VAE_DECODER_LORA_TARGETS)
        inject_adapter_in_model(unet_cfg, self.unet)
        inject_adapter_in_model(vae_cfg, self.vae)
        for name, param in itertools.chain(self.unet.named_parameters(), self.vae.named_parameters()):
            param.requires_grad_("lora_" in name)

    def _stage_channels(self) -> tuple[list[int], list[int]]:
        """Channels entering each VAE encoder down block and each decoder up block."""
        channels = list(self.vae.config.block_out_channels)
        enc_in = [channels[0], *channels[:-1]]
        rev = channels[::-1]
        dec_in = [rev[0], *rev[:-1]]
        return enc_in, dec_in

    def _make_skip_convs(self) -> nn.ModuleList:
        """Zero-initialised 1×1 convs: encoder stage n−1−j (same resolution) → decoder up block j."""
        enc_in, dec_in = self._stage_channels()
        n = len(enc_in)
        convs = nn.ModuleList(nn.Conv2d(enc_in[n - 1 - j], dec_in[j], kernel_size=1) for j in range(n))
        for conv in convs:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        return convs

    def _install_skip_hooks(self) -> None:
        """Forward pre-hooks: remember each encoder stage's input; add its skip projection in the decoder."""
        n = len(self.skip_convs)

        def remember(_module: nn.Module, args: tuple[Any, ...]) -> None:
            if self._skips_active:
                self._skip_activations.append(args[0])

        def make_adder(j: int) -> Callable[[nn.Module, tuple[Any, ...]], tuple[Any, ...] | None]:
            def add_skip(_module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
                if not self._skips_active or len(self._skip_activations) != n:
                    return None
                skip = self.skip_convs[j](self._skip_activations[n - 1 - j])
                return (args[0] + skip, *args[1:])
            return add_skip

        for block in self.vae.encoder.down_blocks:
            block.register_forward_pre_hook(remember)
        for j, block in enumerate(self.vae.decoder.up_blocks):
            block.register_forward_pre_hook(make_adder(j))

    @classmethod
    def from_pretrained(cls, local_dir: str | os.PathLike[str], unet_rank: int = 128, vae_rank: int = 4,
                        prompts: Mapping[str, str] | None = None,
                        torch_dtype: torch.dtype = torch.float32) -> OneStepTranslator:
        """Load SD-Turbo-style components from a LOCAL diffusers directory (``unet/ vae/ text_encoder/
        tokenizer/ scheduler/``), never from the hub. A missing directory or subfolder raises
        ``FileNotFoundError`` naming the path."""
        require_diffusion_extra()
        root = Path(local_dir).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"translator weights directory not found: {root} (expected a local copy of "
                                    "e.g. stabilityai/sd-turbo with unet/, vae/, text_encoder/, tokenizer/, "
                                    "scheduler/; nothing is downloaded)")
        for sub in SUBFOLDERS:
            if not (root / sub).is_dir():
                raise FileNotFoundError(f"translator weights directory {root} lacks the subfolder {root / sub}")
        common = {"local_files_only": True}
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", torch_dtype=torch_dtype, **common)
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", torch_dtype=torch_dtype, **common)
        text_encoder = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", dtype=torch_dtype, **common)
        tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", **common)
        scheduler = DDPMScheduler.from_pretrained(root, subfolder="scheduler", **common)
        return cls(vae, unet, text_encoder, tokenizer, scheduler, unet_rank, vae_rank, prompts)

    @classmethod
    def build_tiny(cls, config: Mapping[str, Any] | None = None) -> OneStepTranslator:
        """A tiny random-weight translator with the real classes, built from configs (for tests and demos).

        ``config`` overrides entries of :data:`TINY_CONFIG` (sub-dicts are merged key by key).
        """
        cfg = _merge(TINY_CONFIG, config)
        return cls(**tiny_components(cfg), unet_rank=cfg["unet_rank"], vae_rank=cfg["vae_rank"])

    # ------------------------------------------------------------------------------------ parameters
    def trainable_parameters(self) -> list[nn.Parameter]:
        """The LoRA and skip-convolution parameters (the only ones that require grad)."""
        return [p for p in self.parameters() if p.requires_grad]

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """LoRA weights of UNet and VAE plus the skip convolutions, keyed by their module path."""
        state = {}
        for name, tensor in self.state_dict().items():
            if "lora_" in name or name.startswith("skip_convs."):
                state[name] = tensor.detach().cpu().contiguous()
        return state

    def save_adapters(self, directory: str | os.PathLike[str]) -> Path:
        """Write only the adapters (LoRA + skip weights) to ``directory/translator_adapters.safetensors``."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        metadata = {"unet_rank": str(self.unet_rank), "vae_rank": str(self.vae_rank),
                    "prompts": json.dumps(self.prompts)}
        save_file(self.adapter_state_dict(), str(path / ADAPTER_FILE), metadata=metadata)
        return path / ADAPTER_FILE

    def load_adapters(self, directory: str | os.PathLike[str]) -> None:
        """Load adapters written by :meth:`save_adapters`; ranks and tensor names must match this model."""
        file = Path(directory) / ADAPTER_FILE
        if not file.is_file():
            raise FileNotFoundError(f"no translator adapters at {file}")
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata() or {}
        ranks = (int(metadata.get("unet_rank", -1)), int(metadata.get("vae_rank", -1)))
        if ranks != (self.unet_rank, self.vae_rank):
            raise ValueError(f"adapters in {file} have LoRA ranks (unet, vae) = {ranks}, "
                             f"this translator has {(self.unet_rank, self.vae_rank)}")
        loaded = load_file(str(file))
        expected = set(self.adapter_state_dict())
        missing, unexpected = expected - set(loaded), set(loaded) - expected
        if missing or unexpected:
            raise ValueError(f"adapters in {file} do not match this translator: missing {sorted(missing)[:5]}, "
                             f"unexpected {sorted(unexpected)[:5]}")
        self.load_state_dict(loaded, strict=False)
        if "prompts" in metadata:
            self.prompts = json.loads(metadata["prompts"])
        self._prompt_cache.clear()

    # ------------------------------------------------------------------------------------ forward
    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def spatial_multiple(self) -> int:
        """Image sides must be multiples of the VAE's downsampling factor (8 for SD)."""
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def prompt_embeddings(self, condition: str, batch: int) -> torch.Tensor:
        """Frozen text-encoder embedding of ``condition``'s prompt, repeated ``batch`` times (cached)."""
        if condition not in self.prompts:
            raise KeyError(f"unknown translator condition {condition!r}; valid: {', '.join(self.prompts)}")
        dtype = next(self.unet.parameters()).dtype
        key = (condition, str(self.device), dtype)
        if key not in self._prompt_cache:
            tokens = self.tokenizer([self.prompts[condition]], padding="max_length", truncation=True,
                                    max_length=self.tokenizer.model_max_length, return_tensors="pt")
            with torch.no_grad():
                hidden = self.text_encoder(tokens.input_ids.to(self.device))[0]
            self._prompt_cache[key] = hidden.to(dtype)
        return self._prompt_cache[key].expand(batch, -1, -1)

    def _pad(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        h, w = images.shape[-2:]
        m = self.spatial_multiple
        pad_h, pad_w = (-h) % m, (-w) % m
        if pad_h or pad_w:
            images = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate")
        return images, (h, w)

    def forward(self, images: torch.Tensor, condition: str, sample_latent: bool = False) -> torch.Tensor:
        """Differentiable translation of ``B×3×H×W`` images in [0, 1] to ``condition`` (or back to "clear").

        Any H, W: the input is padded to :attr:`spatial_multiple` and the output cropped back.
        ``sample_latent`` draws the VAE latent (training, as img2img-turbo) instead of taking its mean.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must have shape B×3×H×W, got {tuple(images.shape)}")
        dtype = next(self.unet.parameters()).dtype
        padded, (h, w) = self._pad(images.to(self.device, dtype) * 2 - 1)
        self._skip_activations = []
        self._skips_active = True
        try:
            posterior = self.vae.encode(padded).latent_dist
            latents = (posterior.sample() if sample_latent else posterior.mode()) * self.vae.config.scaling_factor
            timesteps = torch.full((latents.shape[0],), self.timestep, device=self.device, dtype=torch.long)
            noise_pred = self.unet(latents, timesteps,
                                   encoder_hidden_states=self.prompt_embeddings(condition, latents.shape[0])).sample
            clean = self.scheduler.step(noise_pred, self.timestep, latents, return_dict=True).prev_sample
            decoded = self.vae.decode(clean / self.vae.config.scaling_factor).sample
        finally:
            self._skips_active = False
            self._skip_activations = []
        out = (decoded.clamp(-1, 1)[..., :h, :w] + 1) / 2
        return out.to(images.dtype)

    @torch.no_grad()
    def translate(self, images: torch.Tensor, condition: str) -> torch.Tensor:
        """Translate (no grad, eval mode, deterministic latent mean): same shape, range [0, 1]."""
        was_training = self.training
        self.eval()
        try:
            return self.forward(images, condition)
        finally:
            self.train(was_training)


# ----------------------------------------------------------------------------------------- discriminators
class PatchDiscriminator(nn.Module):
    """A pix2pix/CycleGAN PatchGAN discriminator (random init, trained with the translator): logits per patch."""

    def __init__(self, in_channels: int = 3, width: int = 64, layers: int = 3) -> None:
        super().__init__()
        blocks: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        channels = width
        for i in range(1, layers + 1):
            out = width * min(2 ** i, 8)
            stride = 2 if i < layers else 1
            blocks += [nn.Conv2d(channels, out, 4, stride, 1), nn.InstanceNorm2d(out, affine=True),
                       nn.LeakyReLU(0.2)]
            channels = out
        blocks.append(nn.Conv2d(channels, 1, 4, 1, 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] → patch logits."""
        return self.net(images * 2 - 1)


class CLIPVisionDiscriminator(nn.Module):
    """Vision-aided discriminator (img2img-turbo's choice): a frozen CLIP vision tower + trainable heads.

    Each selected transformer layer's tokens go through a LayerNorm + linear head giving one logit per token
    ("multilevel"), trained with the sigmoid (BCE) loss. CLIP weights must be given as a local directory.
    """

    def __init__(self, clip_vision_dir: str | os.PathLike[str], levels: Sequence[int] | None = None) -> None:
        require_diffusion_extra()
        super().__init__()
        root = Path(clip_vision_dir).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"CLIP vision weights directory not found: {root}")
        self.clip = CLIPVisionModel.from_pretrained(root, local_files_only=True).requires_grad_(False).eval()
        cfg = self.clip.config
        n = cfg.num_hidden_layers
        self.levels = list(levels) if levels is not None else sorted({max(1, n // 3), max(1, 2 * n // 3), n})
        self.heads = nn.ModuleList(nn.Sequential(nn.LayerNorm(cfg.hidden_size), nn.Linear(cfg.hidden_size, 1))
                                   for _ in self.levels)
        self.image_size = int(cfg.image_size)
        self.register_buffer("mean", torch.tensor(CLIP_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(CLIP_STD).reshape(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> CLIPVisionDiscriminator:
        super().train(mode)
        self.clip.eval()  # the backbone stays frozen and in eval mode
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [0, 1] → logits of all heads, concatenated (B × tokens·levels)."""
        x = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                          align_corners=False)
        hidden = self.clip(pixel_values=(x - self.mean) / self.std, output_hidden_states=True).hidden_states
        return torch.cat([head(hidden[level]).squeeze(-1) for head, level in zip(self.heads, self.levels)], dim=1)


# ------------------------------------------------------------------------------------------------ training
def _images(batch: Any) -> torch.Tensor:
    """Images from a loader batch: a tensor, the first element of a tuple/list, or ``batch["image"]``."""
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, Mapping) and "image" in batch:
        return batch["image"]
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise TypeError(f"a translator training batch must be a B×3×H×W tensor, a (tensor, …) tuple or a dict with "
                    f"'image', got {type(batch).__name__}")


def _forever(loader: Iterable[Any]) -> Iterator[torch.Tensor]:
    """Cycle through a loader endlessly (unpaired domains have different lengths)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield _images(batch)
        if empty:
            raise ValueError("a translator training loader yielded no batches")


def _gan_loss(logits: torch.Tensor, real: bool) -> torch.Tensor:
    """Sigmoid (binary cross-entropy) GAN loss on logits."""
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def train_translator(translator: OneStepTranslator, loader_a: Iterable[Any], loader_b: Iterable[Any],
                     condition: str, steps: int, lr: float = 1e-5, disc_lr: float | None = None,
                     lambda_cycle: float = 1.0, lambda_gan: float = 0.5, lambda_identity: float = 1.0,
                     perceptual: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                     lambda_perceptual: float = 10.0, clip_vision_dir: str | os.PathLike[str] | None = None,
                     discriminator_width: int = 64, max_grad_norm: float = 10.0, log_every: int = 10,
                     ) -> list[dict[str, float]]:
    """Unpaired CycleGAN-Turbo LoRA training of ``translator`` between clear (``loader_a``) and ``condition``
    (``loader_b``); returns the per-step loss history.

    Generator loss per step (img2img-turbo weights as defaults):
    ``λ_cyc·(|x − G_b→a(G_a→b(x))|₁ + |y − G_a→b(G_b→a(y))|₁) + λ_gan·GAN + λ_idt·(|y − G_a→b(y)|₁ + |x − G_b→a(x)|₁)``,
    with the direction chosen by the prompt (clear ↔ condition). Discriminators (one per domain) use the
    sigmoid loss. Optimiser: AdamW on the LoRA + skip parameters only; gradients clipped to ``max_grad_norm``.

    * Perceptual term: img2img-turbo adds LPIPS (×10 in the cycle term, ×1 in identity). LPIPS needs pretrained
      VGG/AlexNet weights, which cannot be downloaded here and are not bundled; pass ``perceptual`` — a callable
      ``(a, b) → scalar`` built from LOCAL weights (e.g. an LPIPS module) — to enable it; otherwise L1 only.
    * Discriminator: img2img-turbo uses a vision-aided CLIP discriminator. It is used here only when
      ``clip_vision_dir`` (a local ``CLIPVisionModel`` directory) is given; otherwise a weight-free PatchGAN
      (random init, trained from scratch) stands in — weaker as a prior, but needs no weights.
    * Batches: tensors ``B×3×H×W`` in [0, 1] (or tuples/dicts holding them); the loaders are cycled.
    * Full size (SD-Turbo at 512², ~25k steps, batch 1) is a GPU job: ~6 UNet/VAE passes per step.
    """
    if steps < 1:
        raise ValueError(f"steps must be ≥ 1, got {steps}")
    if condition == SOURCE or condition not in translator.prompts:
        targets = [c for c in translator.prompts if c != SOURCE]
        raise KeyError(f"unknown target condition {condition!r}; valid: {', '.join(targets)}")
    device = translator.device
    if clip_vision_dir is not None:
        disc_a, disc_b = CLIPVisionDiscriminator(clip_vision_dir), CLIPVisionDiscriminator(clip_vision_dir)
    else:
        disc_a, disc_b = PatchDiscriminator(width=discriminator_width), PatchDiscriminator(width=discriminator_width)
    disc_a.to(device).train()
    disc_b.to(device).train()
    disc_params = [p for p in itertools.chain(disc_a.parameters(), disc_b.parameters()) if p.requires_grad]
    gen_params = translator.trainable_parameters()
    opt_g = torch.optim.AdamW(gen_params, lr=lr, betas=(0.9, 0.999), weight_decay=1e-2)
    opt_d = torch.optim.AdamW(disc_params, lr=disc_lr if disc_lr is not None else lr, betas=(0.9, 0.999),
                              weight_decay=1e-2)

    def distance(a: torch.Tensor, b: torch.Tensor, perceptual_weight: float) -> torch.Tensor:
        loss = F.l1_loss(a, b)
        if perceptual is not None:
            loss = loss + perceptual_weight * perceptual(a, b)
        return loss

    translator.train()
    stream_a, stream_b = _forever(loader_a), _forever(loader_b)
    history: list[dict[str, float]] = []
    for step in range(steps):
        x_a = next(stream_a).to(device)
        x_b = next(stream_b).to(device)
        # --- generator: cycle, adversarial, identity (discriminators frozen for this pass)
        for p in disc_params:
            p.requires_grad_(False)
        fake_b = translator(x_a, condition, sample_latent=True)
        fake_a = translator(x_b, SOURCE, sample_latent=True)
        cycle = (distance(translator(fake_b, SOURCE, sample_latent=True), x_a, lambda_perceptual)
                 + distance(translator(fake_a, condition, sample_latent=True), x_b, lambda_perceptual))
        adversarial = _gan_loss(disc_b(fake_b), True) + _gan_loss(disc_a(fake_a), True)
        identity = (distance(translator(x_b, condition, sample_latent=True), x_b, 1.0)
                    + distance(translator(x_a, SOURCE, sample_latent=True), x_a, 1.0))
        loss_g = lambda_cycle * cycle + lambda_gan * adversarial + lambda_identity * identity
        if not torch.isfinite(loss_g):
            raise FloatingPointError(f"translator loss is not finite at step {step}: {float(loss_g)}")
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        torch.nn.utils.clip_grad_norm_(gen_params, max_grad_norm)
        opt_g.step()
        # --- discriminators: real vs. (detached) translated
        for p in disc_params:
            p.requires_grad_(True)
        loss_d = 0.5 * (_gan_loss(disc_b(x_b), True) + _gan_loss(disc_b(fake_b.detach()), False)
                        + _gan_loss(disc_a(x_a), True) + _gan_loss(disc_a(fake_a.detach()), False))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        torch.nn.utils.clip_grad_norm_(disc_params, max_grad_norm)
        opt_d.step()
        record = {"step": float(step), **{name: float(value.detach()) for name, value in (
            ("loss_g", loss_g), ("cycle", cycle), ("adversarial", adversarial), ("identity", identity),
            ("loss_d", loss_d))}}
        history.append(record)
        if log_every and (step % log_every == 0 or step == steps - 1):
            LOGGER.info("translator step %d/%d: %s", step + 1, steps,
                        ", ".join(f"{k}={v:.4f}" for k, v in record.items() if k != "step"))
    translator.eval()
    if not all(math.isfinite(v) for r in history for v in r.values()):
        raise FloatingPointError("non-finite value in the translator training history")
    return history
