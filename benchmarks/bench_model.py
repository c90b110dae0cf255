"""Speed and memory of one training step (forward + backward) of DyKen-Hyena and its baselines.

    python benchmarks/bench_model.py                # CPU, float32, writes benchmarks/results/model_<device>.json/.md
    python benchmarks/bench_model.py --device cuda --dtype bfloat16

Part 1 measures each candidate implementation of the two convolutions at the benchmarks' shapes (that is how
the defaults `dynamic_conv_implementation` and `long_conv_implementation` were chosen). Part 2 times a whole
step at the MIntRec and MIntRec2.0 shapes with a bert-base-sized encoder for every fusion, round-robin, and
reports it as paired ratios to text-only and to MAG-BERT, with the activation memory each step keeps for its
backward pass (and the peak step memory on GPU). Part 3 times the fusion modules alone the same way: the encoder
is shared, and on a small CPU its run-to-run spread (a few percent of a step) hides differences of one percent.
"""

import argparse
import json
import os
import platform
import random
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
FUSIONS = {  # name -> config overrides (alignment: "ctc" for MAG-BERT, "none" for DyKen-Hyena by default)
    "text": dict(fusion="text"),
    "mag": dict(fusion="mag"),
    "dyken": dict(fusion="dyken"),
    "dyken_ctc": dict(fusion="dyken", alignment="ctc"),
    "dyken_untied": dict(fusion="dyken", cross_attention_tied_key_value=False),
    "dyken_audio_pairs": dict(fusion="dyken", audio_frame_pooling=2),
    "dyken_hyena_256": dict(fusion="dyken", hyena_hidden_size=256),
}
# glibc malloc: serve blocks of up to 32 MiB from the heap, and never trim or unmap freed memory (see --allocator).
KEEP_FREED_MEMORY = {
    "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20),
    "MALLOC_TRIM_THRESHOLD_": str(2**40),
    "MALLOC_TOP_PAD_": str(2**30),
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
    """A model and batch at the benchmark's shapes; returns (one fwd+bwd step of the whole model, one fwd+bwd step
    of its fusion module alone or None for text-only, the whole step's saved-activation MiB)."""
    shape = SHAPES[benchmark]
    torch.manual_seed(0)
    config = DyKenConfig(
        text_config=BERT_BASE, num_labels=20, max_text_length=shape["text_length"],
        max_audio_length=shape["audio_frames"], max_video_length=shape["video_frames"], **FUSIONS[fusion],
    )
    model = DyKenForSequenceClassification(config).to(device).train()
    batch_size, text_length = shape["batch_size"], shape["text_length"]
    batch = dict(
        input_ids=torch.randint(1000, 30000, (batch_size, text_length), device=device),
        audio_features=torch.randn(batch_size, shape["audio_frames"], 768, device=device),
        video_features=torch.randn(batch_size, shape["video_frames"], 256, device=device),
        labels=torch.randint(0, 20, (batch_size,), device=device),
    )

    def forward():
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            return model(**batch).loss

    def step():
        forward().backward()
        model.zero_grad(set_to_none=True)

    fusion_step = None
    if config.fusion != "text":
        # The only part that differs between the models, timed without the shared encoder's ~2 s of noise.
        embeddings = torch.randn(batch_size, text_length, 768, device=device, requires_grad=True)
        masks = [torch.ones(batch_size, length, dtype=torch.bool, device=device)
                 for length in (text_length, shape["audio_frames"], shape["video_frames"])]

        def fusion_step():
            with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                output = model.dyken.fusion(
                    embeddings, masks[0], batch["audio_features"], masks[1], batch["video_features"], masks[2]
                )
            output = output[0] if isinstance(output, tuple) else output  # DyKen also returns its kernels
            output.float().sum().backward()
            model.zero_grad(set_to_none=True)

    return step, fusion_step, saved_activations_mb(model, forward)


def round_robin(steps, device, rounds, on_step=None):
    """Time every step once per round, in a new random order each round (so no model always follows the same one),
    and return {name: [ms per round]}. A busy machine slows all of them alike within a round."""
    order, times = list(steps), {name: [] for name in steps}
    shuffle = random.Random(0).shuffle
    for name in order:
        steps[name]()  # warm-up: allocator, kernels, gradients
    for _ in range(rounds):
        shuffle(order)
        for name in order:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
                baseline = torch.cuda.memory_allocated()
            times[name].append(timed(steps[name], device, repeats=1, warmup=0))
            if on_step is not None and device.type == "cuda":
                on_step(name, (torch.cuda.max_memory_allocated() - baseline) / 2**20)
    return times


def paired_ratio_quartiles(times, name, reference):
    """Quartiles of the per-round ratios name / reference: dividing round by round cancels most of the machine's
    drift, and the spread says whether a difference of a percent or two is real."""
    ratios = [mine / theirs for mine, theirs in zip(times[name], times[reference])]
    return statistics.quantiles(ratios, n=4, method="inclusive")


def bench_steps(benchmark, device, dtype, repeats, fusion_repeats):
    """Every fusion at one benchmark's shapes: whole training steps, then the fusion modules alone."""
    built = {fusion: build_step(benchmark, fusion, device, dtype) for fusion in FUSIONS}
    peaks = {}
    step_times = round_robin(
        {fusion: step for fusion, (step, _, _) in built.items()}, device, repeats, on_step=peaks.__setitem__
    )
    fusion_times = round_robin(
        {fusion: fusion_step for fusion, (_, fusion_step, _) in built.items() if fusion_step is not None},
        device, fusion_repeats,
    )
    rows = []
    for fusion, (_, _, saved) in built.items():
        row = dict(
            benchmark=benchmark, fusion=fusion, config=FUSIONS[fusion], ms=statistics.median(step_times[fusion]),
            vs_text_quartiles=paired_ratio_quartiles(step_times, fusion, "text"),
            vs_mag_quartiles=paired_ratio_quartiles(step_times, fusion, "mag"),
            saved_activations_mb=saved, step_ms_per_round=step_times[fusion],
        )
        if fusion in fusion_times:
            row["fusion_ms"] = statistics.median(fusion_times[fusion])
            row["fusion_ms_per_round"] = fusion_times[fusion]
            row["fusion_vs_mag_quartiles"] = paired_ratio_quartiles(fusion_times, fusion, "mag")
        if fusion in peaks:
            row["peak_memory_mb"] = peaks[fusion]
        rows.append(row)
    return rows


def quartiles_text(quartiles):
    """'median [first quartile, third quartile]' of paired per-round ratios."""
    low, median, high = quartiles
    return f"{median:.3f} [{low:.3f}, {high:.3f}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=11, help="Round-robin rounds of whole training steps.")
    parser.add_argument("--fusion_repeats", type=int, default=41, help="Round-robin rounds of the fusion modules.")
    parser.add_argument(
        "--allocator", choices=["no-page-faults", "glibc-default"], default="no-page-faults",
        help="CPU only. glibc hands blocks over its mmap threshold back to the OS when they are freed, so every step "
        "page-faults its large activations in again, by an amount that depends on the process's history (measured: "
        "MAG-BERT's fusion 79 ms or 105 ms at the MIntRec shapes). no-page-faults reruns the script with glibc's "
        "MALLOC_* settings that keep freed memory, as a caching allocator (CUDA's) does: it times the computation.",
    )
    args = parser.parse_args()
    if args.device == "cpu" and args.allocator == "no-page-faults" and any(
        os.environ.get(name) != value for name, value in KEEP_FREED_MEMORY.items()
    ):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **KEEP_FREED_MEMORY})
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)

    convolutions = bench_convolutions(device, dtype, repeats=20)
    steps = []
    for benchmark in SHAPES:
        rows = bench_steps(benchmark, device, dtype, args.repeats, args.fusion_repeats)
        print(rows, flush=True)
        steps += rows

    result = dict(
        device=args.device, dtype=args.dtype, torch=torch.__version__, threads=torch.get_num_threads(),
        machine=platform.processor() or platform.machine(),
        gpu=torch.cuda.get_device_name() if device.type == "cuda" else None,
        encoder="bert-base-sized (12 layers, 768 wide), random weights", allocator=args.allocator, repeats=args.repeats,
        fusion_repeats=args.fusion_repeats, convolutions=convolutions, steps=steps,
    )
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"model_{args.device}_{args.dtype}" + ("_glibc_default" if args.allocator == "glibc-default" else "")
    (out_dir / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n")

    lines = [
        f"# One training step (fwd + bwd), {args.device} {args.dtype}, torch {torch.__version__}, {result['threads']} threads",
        "",
        f"Whole steps: {args.repeats} round-robin rounds; fusion modules alone (the only part that differs): "
        f"{args.fusion_repeats} rounds. Ratios are paired per round: median [quartiles]. "
        f"Allocator: {args.allocator if args.device == 'cpu' else 'the device caching allocator'}.",
        "",
        "| shapes | fusion | config | ms / step | x text-only | x MAG-BERT | fusion module ms | fusion x MAG-BERT "
        "| activations saved for backward (MiB) | peak step memory (MiB, GPU) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in steps:
        config = ", ".join(f"{key}={value}" for key, value in r["config"].items())
        fusion_ms = f"{r['fusion_ms']:.1f}" if "fusion_ms" in r else "n/a"
        fusion_ratio = quartiles_text(r["fusion_vs_mag_quartiles"]) if "fusion_ms" in r else "n/a"
        peak = f"{r['peak_memory_mb']:.0f}" if "peak_memory_mb" in r else "n/a"
        lines.append(
            f"| {r['benchmark']} | {r['fusion']} | {config} | {r['ms']:.1f} | {quartiles_text(r['vs_text_quartiles'])} "
            f"| {quartiles_text(r['vs_mag_quartiles'])} | {fusion_ms} | {fusion_ratio} | {r['saved_activations_mb']:.0f} "
            f"| {peak} |"
        )
    lines += ["", "## Convolution candidates (fwd + bwd, ms)", "", "| shapes | op | Ks | implementation | ms |", "|---|---|---|---|---:|"]
    lines += [
        f"| {r['benchmark']} | {r['op']} | {r.get('kernel_size', '')} | {r['implementation']} | {r['ms']:.3f} |"
        for r in convolutions
    ]
    (out_dir / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
