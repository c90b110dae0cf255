"""Speed and memory of one training step (forward + backward) of DyKen-Hyena and its baselines.

    python benchmarks/bench_model.py                # CPU, float32, writes benchmarks/results/model_<device>.json/.md
    python benchmarks/bench_model.py --device cuda --dtype bfloat16

Part 1 measures each candidate implementation of the two convolutions at the benchmarks' shapes (that is how
the defaults `dynamic_conv_implementation` and `long_conv_implementation` were chosen). Part 2 times a whole
step at the MIntRec and MIntRec2.0 shapes with a bert-base-sized encoder for every fusion, round-robin, and
reports the median as a ratio to text-only, with the activation memory each step keeps for its backward pass
(and the peak step memory on GPU).
"""

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from configuration_dyken import DyKenConfig  # noqa: E402
from modeling_dyken import (  # noqa: E402
    DYNAMIC_CONVOLUTIONS,
    LONG_CONVOLUTIONS,
    DyKenForSequenceClassification,
    ImplicitLongFilter,
)

SHAPES = {  # batch, text, video frames x dim, audio frames x dim (mintrec-data.md)
    "MIntRec": dict(batch_size=16, text_length=30, video_frames=230, audio_frames=480),
    "MIntRec2.0": dict(batch_size=16, text_length=50, video_frames=180, audio_frames=400),
}
FUSIONS = {  # name -> config overrides
    "text": dict(fusion="text"),
    "mag": dict(fusion="mag", alignment="ctc"),
    "dyken": dict(fusion="dyken", alignment="ctc"),
    "dyken_unaligned": dict(fusion="dyken", alignment="none"),
}
BERT_BASE = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)


def timed(step, device, repeats, warmup=2):
    """Median wall time of `step()` in milliseconds."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def saved_activations_mb(model, run_forward):
    """MiB of the tensors autograd keeps for the backward pass (parameters excluded): the part of a step's peak
    memory that grows with the fusion. The CPU allocator has no peak counter, so this is the CPU measure."""
    parameter_storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameter_storages:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = run_forward()
    loss.backward()
    model.zero_grad(set_to_none=True)
    return sum(saved.values()) / 2**20


def bench_convolutions(device, dtype, repeats):
    """Fwd+bwd time of each implementation of the short and the long convolution at the benchmark shapes."""
    rows = []
    channels = 3 * BERT_BASE["hidden_size"]  # Hyena order 2: x0, x1, v
    for benchmark, shape in SHAPES.items():
        batch_size, length = shape["batch_size"], shape["text_length"]
        for kernel_size in (3, 5):
            x = torch.randn(batch_size, length, channels, device=device, dtype=dtype, requires_grad=True)
            kernels = torch.randn(batch_size, length, 12, kernel_size, device=device, dtype=dtype, requires_grad=True)
            for name, convolution in DYNAMIC_CONVOLUTIONS.items():
                ms = timed(lambda: convolution(x, kernels).sum().backward(), device, repeats)
                rows.append(dict(benchmark=benchmark, op="dynamic_short_conv", kernel_size=kernel_size, implementation=name, ms=ms))
        long_filter = ImplicitLongFilter(BERT_BASE["hidden_size"], 50, 3, 64, 1.0, True).to(device)
        u = torch.randn(batch_size, length, BERT_BASE["hidden_size"], device=device, dtype=dtype, requires_grad=True)
        for name, convolution in LONG_CONVOLUTIONS.items():
            def step():
                convolution(u, long_filter(length, device)).sum().backward()

            rows.append(dict(benchmark=benchmark, op="long_conv", implementation=name, ms=timed(step, device, repeats)))
    return rows


def build_step(benchmark, fusion, device, dtype):
    """A model and batch at the benchmark's shapes; returns (one fwd+bwd step, its saved-activation MiB)."""
    shape = SHAPES[benchmark]
    torch.manual_seed(0)
    config = DyKenConfig(
        text_config=BERT_BASE, num_labels=20, max_text_length=shape["text_length"],
        max_audio_length=shape["audio_frames"], max_video_length=shape["video_frames"], **FUSIONS[fusion],
    )
    model = DyKenForSequenceClassification(config).to(device).train()
    batch = dict(
        input_ids=torch.randint(1000, 30000, (shape["batch_size"], shape["text_length"]), device=device),
        audio_features=torch.randn(shape["batch_size"], shape["audio_frames"], 768, device=device),
        video_features=torch.randn(shape["batch_size"], shape["video_frames"], 256, device=device),
        labels=torch.randint(0, 20, (shape["batch_size"],), device=device),
    )

    def forward():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            return model(**batch).loss

    def step():
        forward().backward()
        model.zero_grad(set_to_none=True)

    return step, saved_activations_mb(model, forward)


def bench_steps(benchmark, device, dtype, repeats):
    """Every fusion at one benchmark's shapes, timed round-robin (fusion by fusion within each repeat), so a busy
    machine slows all of them alike and the ratios to text-only stay meaningful."""
    steps = {fusion: build_step(benchmark, fusion, device, dtype) for fusion in FUSIONS}
    times = {fusion: [] for fusion in FUSIONS}
    peaks = {}
    for fusion, (step, _) in steps.items():
        step()  # warm-up: allocator, kernels, gradients
    for _ in range(repeats):
        for fusion, (step, _) in steps.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
                baseline = torch.cuda.memory_allocated()
            times[fusion].append(timed(step, device, repeats=1, warmup=0))
            if device.type == "cuda":
                peaks[fusion] = (torch.cuda.max_memory_allocated() - baseline) / 2**20
    rows = []
    for fusion, (_, saved) in steps.items():
        row = dict(benchmark=benchmark, fusion=fusion, ms=statistics.median(times[fusion]), saved_activations_mb=saved)
        if fusion in peaks:
            row["peak_memory_mb"] = peaks[fusion]
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    convolutions = bench_convolutions(device, dtype, repeats=20)
    steps = []
    for benchmark in SHAPES:
        rows = bench_steps(benchmark, device, dtype, args.repeats)
        print(rows, flush=True)
        steps += rows
    for row in steps:
        text = next(r for r in steps if r["benchmark"] == row["benchmark"] and r["fusion"] == "text")
        row["time_vs_text"] = row["ms"] / text["ms"]

    result = dict(
        device=args.device, dtype=args.dtype, torch=torch.__version__, threads=torch.get_num_threads(),
        machine=platform.processor() or platform.machine(),
        gpu=torch.cuda.get_device_name() if device.type == "cuda" else None,
        encoder="bert-base-sized (12 layers, 768 wide), random weights", convolutions=convolutions, steps=steps,
    )
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"model_{args.device}_{args.dtype}"
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# One training step (fwd + bwd), {args.device} {args.dtype}, torch {torch.__version__}, {result['threads']} threads",
        "",
        "| shapes | fusion | ms / step | x text-only | activations saved for backward (MiB) | peak step memory (MiB, GPU) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['benchmark']} | {r['fusion']} | {r['ms']:.1f} | {r['time_vs_text']:.3f} | {r['saved_activations_mb']:.0f} "
        f"| {r['peak_memory_mb']:.0f} |" if "peak_memory_mb" in r else
        f"| {r['benchmark']} | {r['fusion']} | {r['ms']:.1f} | {r['time_vs_text']:.3f} | {r['saved_activations_mb']:.0f} | n/a |"
        for r in steps
    ]
    lines += ["", "## Convolution candidates (fwd + bwd, ms)", "", "| shapes | op | Ks | implementation | ms |", "|---|---|---|---|---:|"]
    lines += [
        f"| {r['benchmark']} | {r['op']} | {r.get('kernel_size', '')} | {r['implementation']} | {r['ms']:.3f} |"
        for r in convolutions
    ]
    (out_dir / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
