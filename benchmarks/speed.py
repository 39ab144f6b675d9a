"""Training and inference speed of the Monodepth2 baseline, fp32 eager against the fast path, vs the roofline.

    .venv/bin/python benchmarks/speed.py                       # everything (CPU: ~30-60 min on a shared host)
    .venv/bin/python benchmarks/speed.py --sections inference  # one part; results merge into speed.json
    .venv/bin/python benchmarks/speed.py --sections accuracy --world data/world/small

Sections (each merges its results into ``docs/results/speed.json``; ``speed.md`` and
``speed_loss_curves.png`` are rewritten from the whole file):

* ``roofline``  — the machine's measured conv throughput (fp32 contiguous, bf16 channels_last) on the
  ResNet-18 layer shapes, forward only and as a training pass (forward + input and weight gradients), and
  the depth network's FLOPs per resolution (torch's FlopCounterMode).
* ``inference`` — depth-network latency (batch 1) and throughput (batch 8) per resolution for eager
  fp32, the fast path (bf16 autocast + channels_last), the fast path compiled (``--compile-inference``
  resolutions) and ONNX Runtime fp32; the ratio of the fast latency to the roofline bound.
* ``training``  — full training steps (3 frames, depth + pose, Monodepth2 loss, backward, Adam, batch 4)
  through the real Trainer on the analytic corridor: images/s and peak step memory, fp32 eager vs the fast
  path (the ``+fast`` overlay: bf16 + channels_last + fused Adam; + compiled networks and loss at
  ``--compile-training`` resolutions); each step's counted FLOPs and its ratio to the two bf16 bounds
  (forward-only and training-pass conv throughput); and the fast path's network passes alone (forward +
  backward, no loss, no optimiser): what the conv kernels themselves take at the step's shapes.
* ``accuracy``  — the two training paths side by side on the embedded world (loss curves, then the
  world table on the test split).

The host this was written on is shared by several engineers (2 vCPUs, load average up to ~14): every
comparison is a ratio of runs ALTERNATED in one process, so both sides see the same contention;
absolute times are only indicative. On CUDA the same code measures GPU time (synchronised) and
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from robustdepth.bench.script import run_script
from robustdepth.bench.speed_report import render_markdown
from robustdepth.bench.timing import alternate, cpu_description, fast_overlay, paired_speedup, step_gflop
from robustdepth.configure import load_config
from robustdepth.data.corridor import corridor_overrides, write_corridor_sequence
from robustdepth.inference import DepthModel, native_bf16
from robustdepth.networks import DepthNet, ScaleZeroDisparity
from robustdepth.training.context import StepContext, StepState
from robustdepth.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
RESOLUTIONS = [(64, 192), (96, 320), (192, 640)]
FAST_TRAIN = fast_overlay()  # exactly RECIPE+fast
COMPILE_TRAIN = {"train.compile": True, "train.compile_loss": True}


# ------------------------------------------------------------------------------------------ roofline


def conv_throughput(device: torch.device, rounds: int) -> dict[str, Any]:
    """Measured GFLOP/s of 3×3 convolutions shaped like ResNet-18's layers (batch 8), fp32 vs bf16+CL."""
    shapes = [(64, 48, 160), (128, 24, 80), (256, 12, 40)]  # (channels, H, W) of layer1..3 at 192×640
    result: dict[str, Any] = {"shapes": [list(s) for s in shapes]}
    variants: dict[str, Callable[[], Any]] = {}
    flops = 0.0
    for c, h, w in shapes:
        flops += 2 * 8 * c * c * 9 * h * w
    weights = [torch.randn(c, c, 3, 3, device=device) * 0.05 for c, _, _ in shapes]
    xs = [torch.randn(8, c, h, w, device=device) for c, h, w in shapes]
    w_cl = [wt.to(memory_format=torch.channels_last) for wt in weights]
    x_cl = [x.to(memory_format=torch.channels_last) for x in xs]

    @torch.inference_mode()
    def fp32() -> None:
        for x, wt in zip(xs, weights, strict=True):
            F.conv2d(x, wt, padding=1)

    w_bf = [wt.to(torch.bfloat16) for wt in w_cl]
    x_bf = [x.to(torch.bfloat16) for x in x_cl]

    @torch.inference_mode()
    def bf16() -> None:  # bf16 tensors (what the fast inference path feeds oneDNN), no per-call casts
        for x, wt in zip(x_bf, w_bf, strict=True):
            F.conv2d(x, wt, padding=1)

    variants = {"fp32": fp32, "bf16_channels_last": bf16,
                "train_fp32": conv_train_pass(xs, weights, bf16=False),
                "train_bf16_channels_last": conv_train_pass(x_bf, w_cl, bf16=True)}
    alternate(variants, 2, device)  # warm-up: oneDNN primitive creation
    times = alternate(variants, rounds, device)
    for name, ts in times.items():
        work = 3 * flops if name.startswith("train_") else flops  # forward + input gradient + weight gradient
        result[f"{name}_gflops"] = work / min(ts) / 1e9  # best round: the least-disturbed estimate of peak
        result[f"{name}_gflops_median"] = work / statistics.median(ts) / 1e9
    return result


def conv_train_pass(xs: list[torch.Tensor], weights: list[torch.Tensor], *, bf16: bool) -> Callable[[], None]:
    """One training pass of the roofline's convolutions: forward, then the input AND weight gradients (3× the
    forward FLOPs), as a training step runs them — fp32, or (``bf16``) under autocast from bf16 activations and fp32
    master weights (the fast path's numerics: inside the network a conv's input is the previous layer's bf16
    output). Its throughput is the attainable rate of a step's conv work, backward included, against which the
    forward-only bound can be checked (oneDNN's backward kernels may run below its forward ones)."""
    xs = [x.detach().clone().requires_grad_() for x in xs]
    weights = [w.detach().clone().requires_grad_() for w in weights]

    def run() -> None:
        with torch.autocast(xs[0].device.type, torch.bfloat16, enabled=bf16):
            outs = [F.conv2d(x, w, padding=1) for x, w in zip(xs, weights, strict=True)]
        torch.autograd.grad(outs, [*xs, *weights], [torch.ones_like(o) for o in outs])

    return run


def network_gflops(height: int, width: int) -> float:
    """Forward GFLOPs of the depth network on one image (convolutions + matmuls, FLOP = 2·MAC)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = DepthNet().eval()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        net(torch.rand(1, 3, height, width))
    return counter.get_total_flops() / 1e9


def run_roofline(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    conv = conv_throughput(device, args.rounds)
    print(f"conv throughput: {conv}", flush=True)
    return {"conv": conv, "gflops": {f"{h}x{w}": network_gflops(h, w) for h, w in RESOLUTIONS}}


# ------------------------------------------------------------------------------------------ inference


def onnx_session(net: DepthNet, tmp: Path) -> Any:
    """An ONNX Runtime session of the depth network (dynamic batch and size), or None without onnxruntime."""
    from robustdepth.export import export_onnx, ort_session

    path = export_onnx(net, tmp / "depth.onnx", height=64, width=192)["path"]
    return ort_session(path)


@torch.inference_mode()
def eager(net: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reference: the plain fp32 network in contiguous (NCHW) memory format."""
    return net(x)


def run_inference(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    torch.manual_seed(0)
    base = DepthNet().eval().requires_grad_(False).to(device)
    def fast_model(bf16_weights: bool) -> DepthModel:
        net = DepthNet().eval().requires_grad_(False).to(device)
        net.load_state_dict(base.state_dict())
        return DepthModel(net, 192, 640, 0.1, 100.0, device, precision="bf16", channels_last=True,
                          bf16_weights=bf16_weights)

    autocast = fast_model(bf16_weights=False)  # bf16 autocast over fp32 weights (weights cast on every call)
    fast = fast_model(bf16_weights=True)       # weights stored in bf16 once: DepthModel's bf16 path
    compiled = fast_model(bf16_weights=True).compile()
    plain = ScaleZeroDisparity(base)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        session = onnx_session(base, Path(tmp)) if device.type == "cpu" else None
        for h, w in RESOLUTIONS:
            for batch in (1, 8):
                x = torch.rand(batch, 3, h, w, device=device)
                x_np = x.cpu().numpy()
                variants: dict[str, Callable[[], Any]] = {
                    "eager_fp32": lambda x=x: eager(plain, x),
                    "autocast_bf16_cl": lambda x=x: autocast._forward(x),
                    "fast_bf16_cl": lambda x=x: fast._forward(x),
                }
                if f"{h}x{w}" in args.compile_inference and batch == 1:  # one compile: batch 1 latency
                    variants["fast_compiled"] = lambda x=x: compiled._forward(x)
                if session is not None:
                    variants["onnxruntime_fp32"] = lambda x_np=x_np: session.run(None, {"image": x_np})
                t0 = time.perf_counter()
                alternate(variants, 2, device)  # warm-up (and the cold compile)
                warm = time.perf_counter() - t0
                rounds = args.rounds if batch == 1 else max(3, args.rounds // 3)
                times = alternate(variants, rounds, device)
                with torch.inference_mode():
                    ref = plain(x).float()
                    err = {name: float((model._forward(x) - ref).abs().max())
                           for name, model in (("autocast_bf16_cl", autocast), ("fast_bf16_cl", fast))}
                row = {name: {"median_ms": 1000 * statistics.median(ts), "min_ms": 1000 * min(ts),
                              "images_per_s": batch / statistics.median(ts),
                              "speedup_vs_eager_fp32": paired_speedup(times["eager_fp32"], ts)}
                       for name, ts in times.items()}
                row["max_abs_disp_diff_vs_fp32"] = err
                row["warmup_s"] = warm
                row["rounds"] = rounds
                results[f"{h}x{w}_b{batch}"] = row
                print(f"inference {h}x{w} batch {batch}: " + ", ".join(
                    f"{n} {r['median_ms']:.1f} ms (x{r['speedup_vs_eager_fp32']:.2f})"
                    for n, r in row.items() if isinstance(r, dict) and "median_ms" in r), flush=True)
    return results


# ------------------------------------------------------------------------------------------ training


def make_trainer(root: Path, run: Path, height: int, width: int, steps: int, extra: dict[str, Any]) -> Trainer:
    cfg = load_config("monodepth2", corridor_overrides(root, **{
        "data.height": height, "data.width": width, "optim.batch_size": 4, "optim.max_steps": steps, **extra}))
    return Trainer(cfg, run_dir=run)


def networks_pass(trainer: Trainer, batch: dict[str, Any]) -> Callable[[], None]:
    """The step's network work alone: the depth pass and one pose pass per source frame through the trainer's own
    ``StepContext`` (its precision, memory format, weight-cast span and compiled networks), backward from a
    plain sum of their outputs, no loss arithmetic and no optimiser. Its time is the floor the conv kernels
    give a step at these shapes; the step's time above it is losses, optimiser and glue."""
    def run() -> None:
        trainer.models.train()
        ctx = StepContext(trainer._to_device(batch), trainer.depth_net, trainer.pose_net, trainer.providers,
                          StepState(0, 1, 0, 1), trainer.cfg, torch.Generator().manual_seed(0), trainer.device)
        with ctx.weight_casts():
            disps = ctx.depth("input").disp
            poses = [ctx.pose(f).matrix for f in ctx.source_ids]
        (sum(d.sum() for d in disps) + sum(m.sum() for m in poses)).backward()
        trainer.models.zero_grad(set_to_none=True)
    return run


def run_training(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for h, w in RESOLUTIONS:
            root = write_corridor_sequence(Path(tmp) / f"seq{h}", frames=12, height=h, width=w)
            fast_extra = {**FAST_TRAIN, **(COMPILE_TRAIN if f"{h}x{w}" in args.compile_training else {})}
            configs = {"eager_fp32": {}, "fast": fast_extra}
            trainers = {name: make_trainer(root, Path(tmp) / f"run_{name}_{h}", h, w, 10**6, extra)
                        for name, extra in configs.items()}
            fixed = next(trainers["eager_fp32"]._batches())  # the same batch for every timed step: equal work
            variants = {name: (lambda t=t, b=fixed: t.train_step(b)) for name, t in trainers.items()}
            variants["fast_networks"] = networks_pass(trainers["fast"], fixed)
            t0 = time.perf_counter()
            alternate(variants, 2, device)  # warm-up (allocator, oneDNN primitives, cold compile)
            warm = time.perf_counter() - t0
            times = alternate(variants, args.train_rounds, device)
            row: dict[str, Any] = {name: {
                "step_s": statistics.median(ts), "images_per_s": 4 / statistics.median(ts),
                "speedup_vs_eager_fp32": paired_speedup(times["eager_fp32"], ts)} for name, ts in times.items()}
            row["fast_config"] = fast_extra
            row["gflop"] = step_gflop(lambda t=trainers["eager_fp32"], b=fixed: t.train_step(b))
            row["networks_gflop"] = step_gflop(networks_pass(trainers["eager_fp32"], fixed))
            row["warmup_s"] = warm
            row["rounds"] = args.train_rounds
            results[f"{h}x{w}"] = row
            print(f"training {h}x{w}: {json.dumps(row)}", flush=True)
    return results


def peak_rss_child(height: int, width: int, extra: dict[str, Any], steps: int = 3) -> None:
    """(Child process) a few training steps; prints the process's peak RSS in MB (Linux ru_maxrss is KB)."""
    import resource

    with tempfile.TemporaryDirectory() as tmp:
        root = write_corridor_sequence(Path(tmp) / "seq", frames=8, height=height, width=width)
        trainer = make_trainer(root, Path(tmp) / "run", height, width, 10**6, extra)
        batch = next(trainer._batches())
        for _ in range(steps):
            trainer.train_step(batch)
    if trainer.device.type == "cuda":
        print(f"PEAK_RSS_MB {torch.cuda.max_memory_allocated(trainer.device) / 2**20:.1f}")  # GPU allocator peak
    else:
        print(f"PEAK_RSS_MB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")


def run_memory(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Peak memory of training, each path in its own process (CPU: peak RSS — model, optimiser, activations
    and the Python/torch runtime; CUDA: the allocator's peak)."""
    import subprocess

    out: dict[str, Any] = {}
    for h, w in RESOLUTIONS:
        fast_extra = {**FAST_TRAIN, **(COMPILE_TRAIN if f"{h}x{w}" in args.compile_training else {})}
        for name, extra in {"eager_fp32": {}, "fast": fast_extra}.items():
            cmd = [sys.executable, __file__, "--threads", str(torch.get_num_threads()), "--peak-rss-child",
                   f"{h}x{w}", json.dumps(extra)]
            text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            peak = float(text.rsplit("PEAK_RSS_MB", 1)[1].split()[0])
            out.setdefault(f"{h}x{w}", {})[name] = peak
            print(f"peak RSS {h}x{w} {name}: {peak:.0f} MB", flush=True)
    return out


# ------------------------------------------------------------------------------------------ accuracy


def run_accuracy(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Train fp32 eager, the fast path and an fp32 control with another seed on the world in lock-step (the
    first two share seed and data order), then evaluate all three (fp32 inference) and the fp32 model with bf16
    inference on the world test split. ``--accuracy-init`` starts all three from one checkpoint (e.g. the
    benchmark's 2400-step teacher): a converged start makes the comparison far less noisy than from scratch."""
    from robustdepth.evaluation import get_protocol
    from robustdepth.evaluation.runner import evaluate_model

    if not args.world or not Path(args.world).is_dir():
        raise SystemExit(f"--world {args.world!r}: give a generated world root (robustdepth.world.generate)")
    if args.accuracy_init and not Path(args.accuracy_init).is_file():
        raise SystemExit(f"--accuracy-init {args.accuracy_init!r}: no such checkpoint")
    h, w = args.accuracy_size
    common = {"data.dataset": "world", "data.root": str(args.world), "data.height": h, "data.width": w,
              "optim.batch_size": args.accuracy_batch, "optim.max_steps": args.accuracy_steps,
              "optim.lr": args.accuracy_lr, "data.num_workers": 0, "train.progress": False,
              "train.log_every": 10**6, "train.image_every": 10**6, "train.ckpt_every": 10**6}
    if args.accuracy_init:
        common["model.init_checkpoint"] = str(args.accuracy_init)
    control_seed = 43
    configs = {"eager_fp32": {}, "fast": dict(FAST_TRAIN), "control": {"train.seed": control_seed}}
    out: dict[str, Any] = {"steps": args.accuracy_steps, "size": f"{h}x{w}", "world": str(args.world),
                           "init": str(args.accuracy_init or "random"), "batch_size": args.accuracy_batch,
                           "lr": args.accuracy_lr, "fast_config": configs["fast"], "loss": {}, "step_s": {},
                           "world_table": {}}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {name: Trainer(load_config("monodepth2", [f"{k}={v}" for k, v in {**common, **extra}.items()]),
                                  run_dir=Path(tmp) / name) for name, extra in configs.items()}
        streams = {name: t._batches() for name, t in trainers.items()}
        losses: dict[str, list[float]] = {name: [] for name in trainers}
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for i in range(args.accuracy_steps):
            for name, trainer in trainers.items():
                batch = next(streams[name])
                t0 = time.perf_counter()
                losses[name].append(trainer.train_step(batch)["loss/total"])
                times[name].append(time.perf_counter() - t0)
            if i % 50 == 0:
                print(f"accuracy step {i}: " + ", ".join(f"{n} {v[-1]:.4f}" for n, v in losses.items()), flush=True)
        protocol = get_protocol("world")
        for name, trainer in trainers.items():
            ckpt = trainer.save("final.pt")
            for precision in ("fp32", "bf16") if name == "eager_fp32" else ("fp32",):
                model = DepthModel.from_checkpoint(ckpt, device=str(device), precision=precision)
                summary = evaluate_model(model, trainer.cfg, protocol, split="test", progress=False).summary()
                print(f"world {name} infer {precision}: abs_rel {summary['all']['abs_rel']:.4f}", flush=True)
                if name == "control":
                    out["seed_control"] = {"seed": control_seed, "summary": summary, "loss": losses[name]}
                else:
                    out["world_table"][f"train {name} / infer {precision}"] = summary
            if name != "control":
                out["loss"][name] = losses[name]
                out["step_s"][name] = statistics.median(times[name])
    return out


# ------------------------------------------------------------------------------------------ report


def int8_conv_ratio(rounds: int) -> float:
    """ONNX Runtime int8 (QDQ, per-channel) / fp32 throughput of the roofline's 3×3 conv shapes (batch 8); the
    models are written to a temporary folder removed afterwards (the sessions hold them in memory)."""
    with tempfile.TemporaryDirectory(prefix="int8conv_") as folder:
        return _int8_conv_ratio(Path(folder), rounds)


def _int8_conv_ratio(tmp: Path, rounds: int) -> float:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from robustdepth.export import ort_session

    shapes = [(64, 48, 160), (128, 24, 80), (256, 12, 40)]
    rng = np.random.default_rng(0)
    sessions: dict[str, list[Any]] = {"fp32": [], "int8": []}
    feeds = []
    for i, (c, h, w) in enumerate(shapes):
        weight = numpy_helper.from_array((rng.standard_normal((c, c, 3, 3)) * 0.05).astype(np.float32), "w")
        graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], f"conv{i}",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, c, h, w])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, c, h, w])], [weight])
        fp32 = tmp / f"conv{i}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(fp32))
        x = rng.random((8, c, h, w), dtype=np.float32)

        class Reader:
            def __init__(self, x: Any = x) -> None:
                self.items = iter([{"x": x}])

            def get_next(self) -> Any:
                return next(self.items, None)

        quantize_static(str(fp32), str(tmp / f"conv{i}_int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        sessions["fp32"].append(ort_session(fp32))
        sessions["int8"].append(ort_session(tmp / f"conv{i}_int8.onnx"))
        feeds.append({"x": x})
    variants = {name: (lambda ss=ss: [s.run(None, f) for s, f in zip(ss, feeds, strict=True)])
                for name, ss in sessions.items()}
    alternate(variants, 2, torch.device("cpu"))
    times = alternate(variants, rounds, torch.device("cpu"))
    return paired_speedup(times["fp32"], times["int8"])


def run_int8(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """int8 ONNX Runtime vs torch bf16 (fast path), torch fp32 and ORT fp32 at each resolution, alternated;
    AbsRel of fp32 vs int8 on the world test split. The exported models live in a temporary folder removed
    afterwards."""
    with tempfile.TemporaryDirectory(prefix="int8_") as folder:
        return _run_int8(args, device, Path(folder))


def _run_int8(args: argparse.Namespace, device: torch.device, tmp: Path) -> dict[str, Any]:
    import onnxruntime

    from robustdepth.export import export_checkpoint, load_onnx_model
    from robustdepth.quantize import quantize_onnx

    ckpt, world = args.int8_checkpoint, Path(args.world or "data/world/tiny")
    calibration = world / "val"
    res: dict[str, Any] = {"conv_int8_over_fp32": int8_conv_ratio(args.rounds), "speed": {},
                           "onnxruntime": onnxruntime.__version__, "checkpoint": ckpt,
                           "machine": f"{cpu_description()}, {torch.get_num_threads()} threads"}
    for h, w in RESOLUTIONS:
        fp32_path = tmp / f"fp32_{h}x{w}.onnx"
        export_checkpoint(ckpt, fp32_path, h, w)
        quantize_onnx(fp32_path, tmp / f"int8_{h}x{w}.onnx", calibration, args.int8_calibration_frames)
        ort32, ort8 = load_onnx_model(fp32_path), load_onnx_model(tmp / f"int8_{h}x{w}.onnx")
        fast = DepthModel.from_checkpoint(ckpt, device="cpu", precision="bf16", channels_last=True)
        ref = DepthModel.from_checkpoint(ckpt, device="cpu", precision="fp32", channels_last=False)
        for batch in (1, 8):
            x = torch.rand(batch, 3, h, w)
            variants = {"torch_fp32": lambda m=ref, x=x: m.predict_disp(x),
                        "torch_bf16": lambda m=fast, x=x: m.predict_disp(x),
                        "ort_fp32": lambda m=ort32, x=x: m.predict_disp(x),
                        "ort_int8": lambda m=ort8, x=x: m.predict_disp(x)}
            alternate(variants, 2, device)
            times = alternate(variants, args.rounds, device)
            row: dict[str, Any] = {f"{k}_ms": statistics.median(v) * 1e3 for k, v in times.items()}
            row.update({"batch": batch, "int8_vs_bf16": paired_speedup(times["torch_bf16"], times["ort_int8"]),
                        "int8_vs_ort_fp32": paired_speedup(times["ort_fp32"], times["ort_int8"])})
            res["speed"][f"{w}×{h} batch {batch}"] = row
            print(f"int8 {w}x{h} batch {batch}: {row}", flush=True)
    return res


def run_int8_accuracy(args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """fp32 vs int8 ONNX Runtime of ``--int8-checkpoint`` exported at its own resolution and calibrated on the
    world's val split: AbsRel on the world's test split (every condition) and on real KITTI frames with LiDAR
    depth (``--real-odometry``, protocol ``kitti_odometry_lidar``; skipped when the folder is absent). The
    exported models live in a temporary folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="int8_accuracy_") as folder:
        return _run_int8_accuracy(args, Path(folder))


def _run_int8_accuracy(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    import numpy as np

    from robustdepth.configure import apply_overrides
    from robustdepth.evaluation import get_protocol
    from robustdepth.evaluation.runner import evaluate_model
    from robustdepth.export import export_checkpoint, load_onnx_model
    from robustdepth.quantize import calibration_files, median_relative_depth_error, network_input, quantize_onnx

    ckpt, world = args.int8_checkpoint, Path(args.world or "data/world/tiny")
    calibration = world / "val"
    fp32_path, int8_path = tmp / "fp32_native.onnx", tmp / "int8_native.onnx"
    export_checkpoint(ckpt, fp32_path)
    quantize_onnx(fp32_path, int8_path, calibration, args.int8_calibration_frames)
    m32, m8 = load_onnx_model(fp32_path), load_onnx_model(int8_path)
    cfg = load_config("monodepth2", [f"data.root={world}", "data.num_workers=0", f"data.height={m32.height}",
                                     f"data.width={m32.width}"])
    protocol = get_protocol("world")
    s32 = evaluate_model(m32, cfg, protocol, split="test", progress=False).summary()
    s8 = evaluate_model(m8, cfg, protocol, split="test", progress=False).summary()
    files = calibration_files(world / "test", 16)
    x = torch.from_numpy(np.concatenate([network_input(f, m32.height, m32.width) for f in files]))
    res: dict[str, Any] = {
        "world": str(world), "split": "test", "frames": s32.get("counts", {}).get("all"), "checkpoint": ckpt,
        "calibration": str(calibration), "abs_rel_fp32": s32["all"]["abs_rel"], "abs_rel_int8": s8["all"]["abs_rel"],
        "relative_change": s8["all"]["abs_rel"] / s32["all"]["abs_rel"] - 1,
        "median_rel_diff": median_relative_depth_error(m32.predict_depth(x), m8.predict_depth(x)),
        "per_condition": {c: [s32[c]["abs_rel"], s8[c]["abs_rel"]] for c in s32
                          if isinstance(s32[c], dict) and "abs_rel" in s32[c]}}
    real = Path(args.real_odometry)
    if (real / "sequences").is_dir():
        base = DepthModel.from_checkpoint(ckpt, device="cpu", precision="fp32").config
        real_cfg = apply_overrides(base, ["data.dataset=kitti_odometry", f"data.root={real}", "data.num_workers=0"])
        real_protocol = get_protocol("kitti_odometry_lidar")
        r32 = evaluate_model(m32, real_cfg, real_protocol, progress=False).summary()
        r8 = evaluate_model(m8, real_cfg, real_protocol, progress=False).summary()
        res["real"] = {"data": os.path.relpath(real, REPO), "protocol": real_protocol.name,
                       "frames": int(r32["counts"]["all"]), "resolution": [m32.height, m32.width],
                       "abs_rel_fp32": r32["all"]["abs_rel"], "abs_rel_int8": r8["all"]["abs_rel"],
                       "relative_change": r8["all"]["abs_rel"] / r32["all"]["abs_rel"] - 1,
                       "a1_fp32": r32["all"]["a1"], "a1_int8": r8["all"]["a1"]}
    print(f"int8 accuracy: {res}", flush=True)
    return res


def plot_losses(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    acc = res.get("accuracy")
    if not acc:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    curves = dict(acc["loss"])
    if acc.get("seed_control"):
        curves[f"eager_fp32, seed {acc['seed_control']['seed']} (noise control)"] = acc["seed_control"]["loss"]
    for name, curve in curves.items():
        k = 10
        smooth = [statistics.mean(curve[max(0, i - k + 1): i + 1]) for i in range(len(curve))]
        ax.plot(smooth, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(f"training loss (running mean of {k})")
    ax.set_title(f"fp32 eager vs fast path, world {acc['size']}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", default="roofline,inference,training",
                        help="comma list of roofline, inference, training, accuracy, memory, int8, int8_accuracy")
    parser.add_argument("--rounds", type=int, default=15, help="alternating rounds for inference/roofline")
    parser.add_argument("--train-rounds", type=int, default=5, help="alternating training steps per path")
    parser.add_argument("--compile-inference", default="192x640", help="resolutions timed with torch.compile")
    parser.add_argument("--compile-training", default="192x640",
                        help="resolutions whose fast training path also compiles networks + loss")
    parser.add_argument("--world", help="world root for the accuracy section")
    parser.add_argument("--accuracy-steps", type=int, default=300)
    parser.add_argument("--accuracy-size", type=int, nargs=2, default=(64, 192), metavar=("H", "W"))
    parser.add_argument("--accuracy-batch", type=int, default=8)
    parser.add_argument("--accuracy-lr", type=float, default=1e-4)
    parser.add_argument("--accuracy-init", help="checkpoint all accuracy runs start from (default: random init)")
    parser.add_argument("--resolutions", default="64x192,96x320,192x640", help="HxW list for inference/training")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch/ORT intra-op threads (0 = torch's default). On an oversubscribed host 1 thread "
                             "avoids OpenMP barrier stalls and is several times faster than 2")
    parser.add_argument("--int8-checkpoint", default="runs/bench/teacher/checkpoints/last.pt",
                        help="checkpoint the int8 section quantises (calibration: <world>/val, accuracy: <world>/test)")
    parser.add_argument("--int8-calibration-frames", type=int, default=32)
    parser.add_argument("--real-odometry", default=str(REPO.parent / "shared" / "realdata" / "kitti_odometry_04_lidar"),
                        help="KITTI odometry folder with LiDAR depth for the int8_accuracy section")
    parser.add_argument("--peak-rss-child", nargs=2, metavar=("HxW", "JSON"), help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "results")
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    RESOLUTIONS[:] = [tuple(int(v) for v in r.split("x")) for r in args.resolutions.split(",")]
    if args.peak_rss_child:
        size, extra = args.peak_rss_child
        peak_rss_child(*(int(v) for v in size.split("x")), json.loads(extra))
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / "speed.json"
    res = json.loads(json_path.read_text()) if json_path.is_file() else {}
    res.pop("training_legacy", None)
    command = "python benchmarks/speed.py " + " ".join(sys.argv[1:])
    res.update({"machine": f"{cpu_description()}, {torch.get_num_threads()} threads, "
                           f"native bf16: {native_bf16(device)}",
                "torch": torch.__version__, "device": str(device), "threads": torch.get_num_threads(),
                "load_average": os.getloadavg()})
    res["commands"] = sorted(set(res.get("commands", [])) | {command})
    sections = {"roofline": run_roofline, "inference": run_inference, "training": run_training,
                "accuracy": run_accuracy, "memory": run_memory, "int8": run_int8, "int8_accuracy": run_int8_accuracy}
    for name in args.sections.split(","):
        if name not in sections:
            raise SystemExit(f"unknown section {name!r}; known: {', '.join(sections)}")
        new = sections[name](args, device)
        # per-resolution sections merge key by key, so one resolution can be re-measured on its own
        res[name] = {**res.get(name, {}), **new} if name in ("inference", "training", "memory") else new
        # each section keeps its own machine: re-running one section on another host must not relabel the others
        res.setdefault("section_conditions", {})[name] = {"load_average": list(os.getloadavg()),
                                                          "threads": torch.get_num_threads(),
                                                          "machine": cpu_description(), "device": str(device)}
        json_path.write_text(json.dumps(res, indent=1))  # after each section: a crash keeps earlier parts
    text = render_markdown(args.out)
    plot_losses(res, args.out / "speed_loss_curves.png")
    print(text)


if __name__ == "__main__":
    raise SystemExit(run_script(main))
