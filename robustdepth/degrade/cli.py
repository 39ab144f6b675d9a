"""``robustdepth degrade``: write an offline degraded training set; train the one-step learned translator."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _write(args: argparse.Namespace) -> int:
    from robustdepth.configure import load_config
    from robustdepth.degrade.supply import write_offline_set

    cfg = load_config(args.recipe, args.overrides)
    out = write_offline_set(cfg, Path(args.out), list(args.conditions), severity=args.severity, seed=args.seed,
                            translator=args.translator)
    print(f"offline degraded set: {out} (use degrade.mode=offline degrade.offline_root={out})")
    return 0


def _train_translator(args: argparse.Namespace) -> int:
    from robustdepth.degrade.learned_io import TranslatorTraining, parse_adverse, train_from_folders

    job = TranslatorTraining(clear=Path(args.clear), adverse=parse_adverse(args.adverse), out=Path(args.out),
                             base=args.base, steps=args.steps, height=args.size[0], width=args.size[1],
                             batch_size=args.batch_size, lr=args.lr, unet_rank=args.unet_rank,
                             vae_rank=args.vae_rank, clip_vision=args.clip_vision, seed=args.seed)
    out = train_from_folders(job)
    print(f"translator: {out} (write a set with 'robustdepth degrade write RECIPE --translator {out} --out DIR')")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("degrade", help="offline degraded training sets", description=(
        "Image-space weather translators (robustdepth.degrade). 'write' translates every training target frame "
        "of a recipe's dataset once per condition, at the training resolution, pixel-aligned, like md4all's "
        "offline ForkGAN sets; train on it with degrade.mode=offline degrade.offline_root=OUT."))
    commands = p.add_subparsers(dest="degrade_command", metavar="SUBCOMMAND", required=True)
    w = commands.add_parser("write", help="write an offline degraded set", description=(
        "Write OUT/<sequence>/<condition>/<frame>.png for every training frame of RECIPE's dataset "
        "(resumable: existing files are kept)."))
    w.add_argument("recipe", help="recipe whose dataset and resolution to use")
    w.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    w.add_argument("--out", required=True, help="output root")
    w.add_argument("--conditions", nargs="+", default=["night", "rain", "fog", "snow"])
    w.add_argument("--severity", type=float, default=1.0)
    w.add_argument("--seed", type=int, default=0)
    w.add_argument("--translator", help="directory of a trained one-step translator (degrade train-translator); "
                                        "default: the image-space translators")
    w.set_defaults(func=_write)
    t = commands.add_parser("train-translator", help="train the one-step diffusion translator on unpaired folders",
                            description=(
        "Train the SD-Turbo + LoRA one-step translator (CycleGAN-Turbo style: cycle consistency + adversarial "
        "+ identity losses, unpaired) between a folder of clear images and one folder per adverse condition, "
        "one condition after another with shared adapters. Writes OUT/translator_adapters.safetensors and "
        "OUT/translator.json. Full size (SD-Turbo, 512², thousands of steps) is a GPU job; nothing is downloaded."))
    t.add_argument("--clear", required=True, help="folder of clear (day) images, searched recursively")
    t.add_argument("--adverse", required=True, nargs="+", metavar="CONDITION=FOLDER",
                   help="adverse folders, e.g. night=data/night rain=data/rain")
    t.add_argument("--out", required=True, help="translator directory to write")
    t.add_argument("--base", default="tiny", help="local diffusers directory of SD-Turbo (unet/ vae/ text_encoder/ "
                                                  "tokenizer/ scheduler/), or 'tiny' (random weights, for tests)")
    t.add_argument("--steps", type=int, default=100, help="training steps per condition")
    t.add_argument("--size", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    t.add_argument("--batch-size", type=int, default=1)
    t.add_argument("--lr", type=float, default=1e-5)
    t.add_argument("--unet-rank", type=int, default=128, help="UNet LoRA rank (img2img-turbo: 128)")
    t.add_argument("--vae-rank", type=int, default=4, help="VAE-decoder LoRA rank (img2img-turbo: 4)")
    t.add_argument("--clip-vision", help="local CLIPVisionModel directory: vision-aided discriminator "
                                         "(default: a PatchGAN trained from scratch)")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=_train_translator)
