"""``docs/results/speed.md``: the Markdown report of the speed benchmarks, rendered from their JSON results.

Contract: :func:`render_markdown` reads ``speed.json`` (benchmarks/speed.py) and ``speed_profile.json``
(benchmarks/profile_step.py) from one folder — each optional — and rewrites ``speed.md`` there from them alone
(no measuring, no clock, no host lookup), so the same JSON files always give the same bytes and either script
keeps the other's sections. :func:`to_markdown` renders speed.json's sections, :func:`profile_markdown` the
step profile, :func:`int8_markdown` the int8 section, each read against the roofline's measured conv throughput.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

__all__ = ["gpu_sentence", "int8_markdown", "profile_markdown", "render_markdown", "to_markdown"]


def _fmt(x: Any, spec: str = ".1f") -> str:
    return format(x, spec) if isinstance(x, (int, float)) else "–"


def gpu_sentence(res: dict[str, Any]) -> str:
    """Whether any section ran on a GPU (the CUDA paths are written either way)."""
    devices = {v.get("device", res.get("device")) for v in res.get("section_conditions", {}).values()}
    if any(str(d).startswith("cuda") for d in devices):
        return "Sections run on CUDA say so in their machine field."
    return ("Every section ran on the CPU: the CUDA paths (autocast device type, pinned memory + non-blocking "
            "copies, nccl) are written, and their numbers need a run with `--device cuda`.")


def to_markdown(res: dict[str, Any]) -> str:
    lines = ["# Speed: fp32 eager vs the fast path", "",
             f"Machine of the latest run: {res.get('machine')}; torch {res.get('torch')}; device {res.get('device')}. "
             f"Commands: {', '.join(f'`{c}`' for c in res.get('commands', []))}.", "",
             "Host load average (1/5/15 min), threads and machine when each section ran: "
             + "; ".join(f"{name} {' / '.join(f'{x:.1f}' for x in v['load_average'])} ({v['threads']} thread(s)"
                         f"{', ' + v['machine'] if v.get('machine') else ', machine not recorded'})"
                         for name, v in res.get("section_conditions", {}).items())
             + ". Every speed-up is the median of per-round ratios of runs alternated in one process, so both "
             "sides see the same host. " + gpu_sentence(res), "",
             "## What is on by default, and how to get the fast path", "",
             "- **Inference**: `robustdepth.load(ckpt)` and `predict` default to the fastest safe path, "
             "`precision=\"auto\"` (bf16 where the device has native bf16, else fp32: the weights are stored in bf16 "
             "once, which beats autocast's per-call weight casts) + channels_last, "
             "folders/videos batched 8 frames per call, compile once a job is long enough to amortise it "
             "(≥ 5000 frames on CPU, ≥ 500 on CUDA). bf16 moves depth by up to ~1 % per pixel and AbsRel by "
             "< 0.001; `robustdepth eval`, the benchmarks and `DepthModel.from_checkpoint` stay fp32 so evaluation "
             "tables are exact (`--precision fp32` / `precision=\"fp32\"` anywhere). ONNX: `robustdepth export "
             "CKPT --onnx OUT`, `predict --backend onnxruntime`. int8 (CPUs with VNNI): `robustdepth export CKPT "
             "--onnx OUT --int8 --calibration DIR` (ONNX Runtime static quantisation, QDQ, per-channel weights, "
             "activation ranges calibrated on the frames under DIR, e.g. a world's val split); the same "
             "`predict --backend onnxruntime OUT ...` loads it (section \"int8 inference\" below).",
             "- **Training**: the input pipeline is always on (resized-frame cache `data.cache_frames_mb`, "
             "persistent workers with prefetch, pinned memory + non-blocking copies on CUDA). The fast numerics are "
             "one overlay, `RECIPE+fast` (= `train.precision=bf16 train.channels_last=true optim.fused=true`; + "
             "`train.compile=true train.compile_loss=true` for long runs at ≥ 192×640). The long runs take it: "
             "`make demo` where the device has native bf16, every student of the methods benchmark and the "
             "real-KITTI benchmark. The schema default stays the fp32 Monodepth2 baseline that every recipe's tests "
             "and the bit-exact resume guarantee are written against (a run's config, hence its resume and its "
             "benchmark cache, must not change under it). In bf16 every network pass of a step runs in bf16: the "
             "trained networks (each trained weight cast once per step, however many times its network runs), "
             "and the frozen teachers and SEC's past models (conv weights stored in bf16 once: bit-identical to "
             "autocast's casts). Losses (SSIM, warps, reductions), poses and the optimiser's master weights stay "
             "fp32.",
             "- On an oversubscribed CPU host use **1 thread** (`torch.set_num_threads(1)` / `OMP_NUM_THREADS=1`): "
             "with 2 threads every OpenMP barrier waits for a descheduled partner. This benchmark ran with "
             f"{res.get('threads', '?')} thread(s); each section's threads and load average are listed above.", ""]
    roof = res.get("roofline")
    if roof:
        conv = roof["conv"]
        lines += ["## Roofline", "",
                  f"Measured 3×3 conv throughput (ResNet-18 layer shapes, batch 8, best round): fp32 "
                  f"{conv['fp32_gflops']:.0f} GFLOP/s, bf16 + channels_last "
                  f"{conv['bf16_channels_last_gflops']:.0f} GFLOP/s (medians {conv['fp32_gflops_median']:.0f} / "
                  f"{conv['bf16_channels_last_gflops_median']:.0f}).{_train_conv_text(conv)}", "",
                  "| resolution | depth-net GFLOPs / image | bound fp32 (ms) | bound bf16 (ms) |",
                  "|---|---:|---:|---:|"]
        for r, g in roof["gflops"].items():
            lines.append(f"| {r} | {g:.2f} | {1000 * g / conv['fp32_gflops']:.2f} | "
                         f"{1000 * g / conv['bf16_channels_last_gflops']:.2f} |")
        lines.append("")
    inf = res.get("inference")
    if inf:
        lines += ["## Inference (depth network, scale-0 disparity)", "",
                  "| resolution | batch | eager fp32 ms | autocast bf16+CL ms (×) | fast: bf16 weights + CL ms (×) "
                  "| fast compiled ms (×) | ONNX Runtime fp32 ms (×) | fast images/s | best fast / roofline bf16 "
                  "| max |Δdisp| bf16 |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for key, row in inf.items():
            reso, b = key.rsplit("_b", 1)
            h, w = reso.split("x")

            def cell(name: str, row: dict[str, Any] = row) -> str:
                r = row.get(name)
                return f"{r['median_ms']:.1f} (×{r['speedup_vs_eager_fp32']:.2f})" if r else "–"
            ratio = "–"
            if roof and reso in roof["gflops"]:
                best = min(row[n]["median_ms"] for n in ("fast_bf16_cl", "fast_compiled") if n in row)
                bound = 1000 * int(b) * roof["gflops"][reso] / roof["conv"]["bf16_channels_last_gflops"]
                ratio = f"{best / bound:.1f}×"
            lines.append(f"| {w}×{h} | {b} | {row['eager_fp32']['median_ms']:.1f} | {cell('autocast_bf16_cl')} | "
                         f"{cell('fast_bf16_cl')} | "
                         f"{cell('fast_compiled')} | {cell('onnxruntime_fp32')} | "
                         f"{row['fast_bf16_cl']['images_per_s']:.1f} | {ratio} | "
                         f"{row['max_abs_disp_diff_vs_fp32']['fast_bf16_cl']:.1e} |")
        lines.append("")
        if roof:
            conv = roof["conv"]
            lines += [f"The conv-throughput ratio bf16+CL / fp32 measured in this run is "
                      f"×{conv['bf16_channels_last_gflops'] / conv['fp32_gflops']:.2f} (medians "
                      f"×{conv['bf16_channels_last_gflops_median'] / conv['fp32_gflops_median']:.2f}): a conv-bound "
                      "network cannot gain much more than that from bf16 on this host at this load. "
                      "`max |Δdisp| bf16` is the bf16 rounding of the sigmoid output (2^-9 near 0.5).", ""]
    tr = res.get("training")
    if tr:
        conv = (roof or {}).get("conv", {})
        bf16, bf16_train = conv.get("bf16_channels_last_gflops"), conv.get("train_bf16_channels_last_gflops")
        lines += ["## Training (3 frames, depth + pose, full Monodepth2 loss, backward, Adam; batch 4)", "",
                  "| resolution | fast path | eager fp32 s/step | fast s/step | speed-up (paired) | eager images/s | "
                  "fast images/s | peak RSS eager / fast (MB) | GFLOP / step | fast / bound bf16 | "
                  "fast / train-pass bound | fast networks alone s (/ bound bf16) | fast / networks alone |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        mem = res.get("memory", {})
        for r, row in tr.items():
            e, f = row["eager_fp32"], row["fast"]
            cfg = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in row["fast_config"].items())
            lines.append(f"| {r} | {cfg} | {e['step_s']:.2f} | {f['step_s']:.2f} | ×{f['speedup_vs_eager_fp32']:.2f} | "
                         f"{e['images_per_s']:.2f} | {f['images_per_s']:.2f} | "
                         f"{_fmt(mem.get(r, {}).get('eager_fp32'), '.0f')} / "
                         f"{_fmt(mem.get(r, {}).get('fast'), '.0f')} | {_fmt(row.get('gflop'), '.1f')} | "
                         f"{_bound_ratio(f['step_s'], row.get('gflop'), bf16)} | "
                         f"{_bound_ratio(f['step_s'], row.get('gflop'), bf16_train)} | {_networks(row, bf16)} |")
        lines += ["", "`bound bf16` = the step's counted FLOPs (every forward and backward) at the forward-only "
                  "bf16+CL conv throughput (the target's definition); `train-pass bound` = the same FLOPs at the "
                  "measured throughput of a conv training pass (forward + input and weight gradients, bf16 autocast "
                  "+ CL): what remains above it is overhead, not conv arithmetic. `networks alone` = the fast "
                  "path's depth pass and one pose pass per source frame, forward + backward from a plain sum of "
                  "their outputs (same precision, layout, weight casts and compilation as the step; no loss, no "
                  "optimiser), alternated with the steps: the time the conv kernels themselves take at the step's "
                  "shapes, a floor under the step that no change to losses, optimiser or glue can go below.", ""]
    acc = res.get("accuracy")
    if acc:
        lines += [f"## Same accuracy: {acc['steps']} steps on the world ({acc['world']}) at {acc['size']}", "",
                  f"Start: {acc.get('init', 'random')}; batch {acc.get('batch_size', 4)}, lr {acc.get('lr', 2e-4)}. "
                  f"eager_fp32 and fast share seed and data order; fast = {acc['fast_config']}; the control row is "
                  "eager fp32 with another seed (the run-to-run noise the fast path must stay within). Loss curves: "
                  "`speed_loss_curves.png`.", ""]
        n = max(1, len(next(iter(acc["loss"].values()))) // 5)
        for name, curve in acc["loss"].items():
            tail = statistics.mean(curve[-n:])
            lines.append(f"- {name}: mean loss of the last {n} steps {tail:.4f}; "
                         f"median step {acc['step_s'][name]:.2f} s")
        metrics = ("abs_rel", "sq_rel", "rmse", "a1")
        conds = [c for c in next(iter(acc["world_table"].values())) if c not in ("counts", "scale_ratio")]
        header = [f"{c} abs_rel" for c in conds] + [f"all {m}" for m in metrics[1:]]
        lines += ["", "| run | " + " | ".join(header) + " |", "|---|" + "---:|" * len(header)]
        tables = dict(acc["world_table"])
        control = acc.get("seed_control")  # same fp32 recipe, another seed: the run-to-run noise floor
        if control:
            tables[f"control: train eager_fp32 seed {control['seed']} / infer fp32"] = control["summary"]
        for name, summary in tables.items():
            cells = [f"{summary[c]['abs_rel']:.4f}" for c in conds] + [f"{summary['all'][m]:.4f}" for m in metrics[1:]]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
        if acc["steps"] < 2000 and acc.get("init", "random") == "random":
            lines += [f"Read with care: after {acc['steps']} steps the networks are early in training, where the "
                      "world metrics of two runs differ a lot even in fp32 (the control row is the same fp32 recipe "
                      "with another seed). What this run does show: the training losses of the two paths agree, and "
                      "bf16 *inference* of one fp32-trained model changes abs_rel by < 0.001. A converged comparison "
                      "(several thousand steps, several seeds) is for a quiet machine.", ""]
    return "\n".join(lines) + "\n"


def render_markdown(out: Path) -> str:
    """``speed.md`` from every result file in ``out``: speed.json (this script), speed_profile.json
    (benchmarks/profile_step.py); each part is optional."""
    def load(name: str) -> dict[str, Any]:
        path = out / name
        return json.loads(path.read_text()) if path.is_file() else {}

    res, profile = load("speed.json"), load("speed_profile.json")
    command = next((c for c in res.get("commands", []) if re.search(r"--sections \S*\bint8\b(?!_)", c)), "")
    conditions = res.get("section_conditions", {})
    int8 = {"machine": res.get("machine"), **res.get("int8", {}), "command": command,
            "load_average": conditions.get("int8", {}).get("load_average", []),
            "accuracy": res.get("int8_accuracy", res.get("int8", {}).get("accuracy")),
            "accuracy_machine": conditions.get("int8_accuracy", {}).get("machine")}
    if conditions.get("int8", {}).get("machine"):
        int8["machine"] = conditions["int8"]["machine"]
    text = to_markdown(res) if res else "# Speed\n"
    conv = res.get("roofline", {}).get("conv", {})
    roofline_threads = res.get("section_conditions", {}).get("roofline", {}).get("threads")
    if conv and roofline_threads:
        conv = {**conv, "threads": roofline_threads}
    if profile:
        text += profile_markdown(profile, conv)
    if "speed" in int8:
        text += int8_markdown(int8, {**res.get("roofline", {}), "conv": conv})
    (out / "speed.md").write_text(text)
    return text


def _conv_ratios(conv: dict[str, Any], int8: dict[str, Any] | None = None) -> str:
    """The measured conv throughput ratios every speed table is read against."""
    parts = []
    if conv:
        threads = f", {conv['threads']} thread(s): rows timed with fewer threads sit that much above their bound" \
            if "threads" in conv else ""
        parts.append(f"conv bf16+CL / fp32 ×{conv['bf16_channels_last_gflops'] / conv['fp32_gflops']:.2f} "
                     f"(fp32 {conv['fp32_gflops']:.0f}, bf16 {conv['bf16_channels_last_gflops']:.0f} GFLOP/s, "
                     f"roofline section{threads})")
    if int8 and "conv_int8_over_fp32" in int8:
        parts.append(f"conv int8 / fp32 ×{int8['conv_int8_over_fp32']:.2f} (ONNX Runtime QDQ, this section)")
    return "; ".join(parts) if parts else "conv ratios not measured yet"


def _train_conv_text(conv: dict[str, Any]) -> str:
    """The roofline's training-pass conv throughput sentence (empty for results measured before it existed)."""
    if "train_bf16_channels_last_gflops" not in conv:
        return ""
    return (f" As a training pass (forward + input and weight gradients, 3× the forward FLOPs): fp32 "
            f"{conv['train_fp32_gflops']:.0f}, bf16 autocast + channels_last "
            f"{conv['train_bf16_channels_last_gflops']:.0f} GFLOP/s (medians {conv['train_fp32_gflops_median']:.0f} / "
            f"{conv['train_bf16_channels_last_gflops_median']:.0f}): the rate a training step's conv work can "
            "reach here, backward kernels included.")


def _networks(row: dict[str, Any], bf16_gflops: float | None) -> str:
    """'networks-alone s (its ratio to the bf16 bound of its own FLOPs) | step / networks-alone' cells (– for
    runs before the column existed)."""
    nets = row.get("fast_networks")
    if not nets:
        return "– | –"
    return (f"{nets['step_s']:.2f} ({_bound_ratio(nets['step_s'], row.get('networks_gflop'), bf16_gflops)}) | "
            f"{row['fast']['step_s'] / nets['step_s']:.2f}×")


def _bound_ratio(step_s: float, gflop: float | None, gflops_per_s: float | None) -> str:
    """``step_s`` over the time ``gflop`` takes at ``gflops_per_s`` ("–" when either is unknown)."""
    if not gflop or not gflops_per_s:
        return "–"
    return f"{step_s / (gflop / gflops_per_s):.1f}×"


def profile_markdown(profile: dict[str, Any], conv: dict[str, Any]) -> str:
    """The "Step profile" section: per case, the median exclusive time of every part of a training step."""
    lines = ["", "## Step profile: where a training step's time goes", "",
             f"Machine: {profile['machine']}; torch {profile['torch']}; batch {profile['batch_size']}; "
             f"load average when it ran {' / '.join(f'{x:.1f}' for x in profile['load_average'])}. "
             f"{_conv_ratios(conv)}. Command: `{profile['command']}`. Exclusive wall time per part (median "
             "of the instrumented steps; a loss term's time excludes the network passes and providers it "
             "triggered, but includes what a provider's result computes lazily when the term reads it: "
             "RoSAMDepth's AROM and ORE maps, ORE's frozen pose passes and warps included, count in "
             "`rosam_distill`; a past model's pass counts in `sec`). Absolute times are from a shared host; the "
             "shares within a step are the finding. `bound bf16` = the step's counted FLOPs (forward + backward, "
             "torch's FlopCounterMode) at the measured bf16+CL conv throughput.", ""]
    lines += ["| case | step ms | GFLOP | step / bound bf16 | step / train-pass bound | parts: ms (share of step) |",
              "|---|---:|---:|---:|---:|---|"]
    for key, case in profile["cases"].items():
        parts = dict(case["parts_s"])
        step = parts.pop("step")
        gflop = case.get("gflop")
        cells = ", ".join(f"{name} {t * 1e3:.0f} ({t / step:.0%})" for name, t in parts.items() if t / step >= 0.005)
        lines.append(f"| {key} | {step * 1e3:.0f} | {_fmt(gflop)} | "
                     f"{_bound_ratio(step, gflop, conv.get('bf16_channels_last_gflops'))} | "
                     f"{_bound_ratio(step, gflop, conv.get('train_bf16_channels_last_gflops'))} | {cells} |")
    lines += ["", "Grouped (share of the step): network passes = depth + pose forwards + providers (frozen teachers); "
              "losses = every loss term's own time; backward; optimiser (gradient norm, clipping when on, + Adam); "
              "rest = data + other.", ""]
    for key, case in profile["cases"].items():
        parts = dict(case["parts_s"])
        step = parts.pop("step")
        groups = {"network passes": sum(t for n, t in parts.items() if "forward" in n or n.startswith("provider")),
                  "losses": sum(t for n, t in parts.items() if n.startswith("loss")),
                  "backward": parts.get("backward", 0.0), "optimiser": parts.get("optimiser", 0.0),
                  "rest": parts.get("data", 0.0) + parts.get("other", 0.0)}
        lines.append(f"- {key}: " + ", ".join(f"{g} {t / step:.0%}" for g, t in groups.items()))
    lines += ["", "Top operators by self CPU time (one profiled step, torch.profiler):", ""]
    for key, case in profile["cases"].items():
        ops = ", ".join(f"{o['op']} {o['share']:.0%}" for o in case["top_ops"][:8])
        lines.append(f"- {key}: {ops}")
    before_after = profile.get("photometric_paths")
    if before_after:
        lines += ["", "### Photometric loss: fused path vs the previous one", "",
                  before_after["note"], "", "| resolution | previous ms | fused ms | speed-up (paired) |",
                  "|---|---:|---:|---:|"]
        for size, row in before_after["rows"].items():
            lines.append(f"| {size} | {row['previous_ms']:.1f} | {row['fused_ms']:.1f} | ×{row['speedup']:.2f} |")
    steps = profile.get("step_paths")
    if steps:
        lines += ["", "### A whole fast step: the previous paths vs the current ones", "",
                  f"Monodepth2 through the fast path ({', '.join(f'{k}={v}' for k, v in steps['config'].items())}), "
                  f"batch {steps['batch_size']}, one fixed batch, alternated in one process. {steps['note']}",
                  "", "| resolution | previous ms | current ms | speed-up (paired) |", "|---|---:|---:|---:|"]
        for size, row in steps["rows"].items():
            lines.append(f"| {size} | {row['previous_ms']:.0f} | {row['current_ms']:.0f} | ×{row['speedup']:.2f} |")
    optimiser = profile.get("optimiser_paths")
    if optimiser:
        lines += ["", "### Adam's step: torch's default CPU path vs foreach / fused", "",
                  "The depth + pose weights of Monodepth2, alternated in one process; drift = max |Δweight| from the "
                  "default path after 5 identical steps (the fused kernel rounds differently, nothing else).", "",
                  "| path | step ms | speed-up (paired) | drift after 5 steps |", "|---|---:|---:|---:|"]
        for name, row in optimiser.items():
            lines.append(f"| {name} | {row['step_ms']:.0f} | ×{row['speedup']:.2f} | "
                         f"{row['max_abs_drift_after_5_steps']:.1e} |")
    return "\n".join(lines) + "\n"


def int8_markdown(int8: dict[str, Any], roofline: dict[str, Any]) -> str:
    """The "int8 inference" section (``benchmarks/speed.py --sections int8``), read against the roofline."""
    conv = roofline.get("conv", {})
    lines = ["", "## int8 inference (ONNX Runtime static quantisation, QDQ, per-channel)", "",
             f"Machine: {int8['machine']}; onnxruntime {int8.get('onnxruntime')}; load average "
             f"{' / '.join(f'{x:.1f}' for x in int8['load_average'])}. {_conv_ratios(conv, int8)}. "
             f"Command: `{int8['command']}`. Model: `{int8.get('checkpoint')}` exported at each size, calibrated on "
             "the world's val split. Timings alternate the four paths in one process (medians; speed-ups are medians "
             "of per-round ratios). `/ bound` = time over the depth network's FLOPs at the measured conv "
             "throughput of that precision (bf16+CL from the roofline section; int8 = fp32 × the int8/fp32 conv "
             "ratio above).", "",
             "| resolution | batch | torch fp32 ms | torch bf16 (fast) ms | ORT fp32 ms | ORT int8 ms | int8 vs bf16 "
             "(paired) | int8 vs ORT fp32 (paired) | bf16 / bf16 bound | int8 / int8 bound |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for key, row in int8.get("speed", {}).items():
        w, h = key.split()[0].split("×")
        gflop = roofline.get("gflops", {}).get(f"{h}x{w}")
        bound_bf16 = bound_int8 = "–"
        if gflop and conv:
            bf16_s = row["batch"] * gflop / conv["bf16_channels_last_gflops"]
            int8_s = row["batch"] * gflop / (conv["fp32_gflops"] * int8.get("conv_int8_over_fp32", float("nan")))
            bound_bf16 = f"{row['torch_bf16_ms'] / 1e3 / bf16_s:.1f}×"
            bound_int8 = f"{row['ort_int8_ms'] / 1e3 / int8_s:.1f}×"
        lines.append(f"| {key.split()[0]} | {row['batch']} | {row['torch_fp32_ms']:.1f} | {row['torch_bf16_ms']:.1f} | "
                     f"{row['ort_fp32_ms']:.1f} | {row['ort_int8_ms']:.1f} | ×{row['int8_vs_bf16']:.2f} | "
                     f"×{row['int8_vs_ort_fp32']:.2f} | {bound_bf16} | {bound_int8} |")
    acc = int8.get("accuracy")
    if acc:
        conds = ", ".join(f"{c} {a:.4f} → {b:.4f}" for c, (a, b) in acc.get("per_condition", {}).items())
        calibration = acc.get("calibration", "the world val split")
        lines += ["", "Accuracy (`python benchmarks/speed.py --sections int8_accuracy`; checkpoint "
                  f"`{acc['checkpoint']}` exported at its own resolution and calibrated on `{calibration}`; ONNX "
                  f"Runtime fp32 vs int8) on {acc['world']}, {acc['split']} split: AbsRel "
                  f"{acc['abs_rel_fp32']:.4f} → {acc['abs_rel_int8']:.4f} ({acc['relative_change']:+.2%}); per "
                  f"condition {conds}. Median "
                  f"per-pixel relative depth difference int8 vs fp32 on 16 test frames: {acc['median_rel_diff']:.4f}."]
        real = acc.get("real")
        if real:
            lines.append(f"On real frames ({real['data']}, {real['frames']} frames with LiDAR depth, protocol "
                         f"`{real['protocol']}`): AbsRel {real['abs_rel_fp32']:.4f} → {real['abs_rel_int8']:.4f} "
                         f"({real['relative_change']:+.2%}), δ1 {real['a1_fp32']:.4f} → {real['a1_int8']:.4f}.")
    return "\n".join(lines) + "\n"
