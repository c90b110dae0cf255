"""Wall time and peak memory of converting a MIntRec-sized release to Parquet (`python -m datasets_scripts convert`).

    python benchmarks/bench_data_conversion.py      # writes benchmarks/results/data_conversion.json / .md

The release has the real MIntRec size and layout: 2,224 clips (1,334 / 445 / 445), audio (T, 768) float32
wav2vec 2.0-like frames at 49.75 frames/s, video as lists of (1, 256) key-frame arrays at 23.46 frames/s
(so the longest clip, 9.59 s, has the real maxima: 477 audio and 225 video frames). Clip durations are
log-normal (sigma 0.5) with the real mean of 2.38 s, clipped to [0.5, 9.59] s, and the longest clip is set
to 9.59 s. Features are random (their values do not matter for the cost); texts are short placeholders.

The conversion runs in fresh child processes so the release generation does not count:
  run 1: `convert_to_parquet` exactly as the CLI calls it: wall time, peak RSS (getrusage) and, from a
         20 ms sampler of /proc/self/status, the peaks of anonymous (private heap) and file-backed RSS;
  run 2: the same call under tracemalloc (Python-heap peak, numpy buffers included). tracemalloc slows
         allocation, so its wall time is not reported.
"Streamed" means the peak stays well below two copies of the features: each pickle is unpickled whole
once (unavoidable, it is a single dict) and freed after its last split, and examples go to Parquet one
at a time in row groups of 32 examples, with no intermediate Arrow copy.
"""

import argparse
import json
import os
import pickle
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from huggingface_hub import DatasetCard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SPLIT_SIZES = {"train": 1334, "dev": 445, "test": 445}
MEAN_DURATION_S, MAX_DURATION_S, DURATION_SIGMA = 2.38, 9.59, 0.5
AUDIO_FRAMES_PER_S = 477 / MAX_DURATION_S  # 49.7: wav2vec 2.0 (20 ms stride)
VIDEO_FRAMES_PER_S = 225 / MAX_DURATION_S  # 23.5 key frames per second


def write_mintrec_sized_release(out_dir: Path, seed: int = 0) -> dict:
    """Official-layout MIntRec release with realistic lengths; returns its statistics."""
    from datasets_scripts import MINTREC_LABELS

    rng = np.random.default_rng(seed)
    total = sum(SPLIT_SIZES.values())
    mu = np.log(MEAN_DURATION_S) - DURATION_SIGMA**2 / 2  # log-normal with the given mean
    durations = np.clip(rng.lognormal(mu, DURATION_SIGMA, total), 0.5, MAX_DURATION_S)
    durations[np.argmax(durations)] = MAX_DURATION_S
    audio_frames = np.maximum(1, np.floor(durations * AUDIO_FRAMES_PER_S + 1e-6)).astype(int)
    video_frames = np.maximum(1, np.round(durations * VIDEO_FRAMES_PER_S)).astype(int)

    out_dir.mkdir(parents=True, exist_ok=True)
    audio, video, index = {}, {}, 0
    for split, size in SPLIT_SIZES.items():
        lines = ["season\tepisode\tclip\ttext\tlabel"]
        for _ in range(size):
            season, episode, clip = f"S{index // 1000 + 1:02d}", f"E{index // 100 % 10 + 1:02d}", str(index)
            sample_id = f"{season}_{episode}_{clip}"
            lines.append(f"{season}\t{episode}\t{clip}\tplaceholder utterance number {index}, \"quoted\".\t"
                         f"{MINTREC_LABELS[index % len(MINTREC_LABELS)]}")  # fmt: skip
            audio[sample_id] = rng.standard_normal((audio_frames[index], 768), dtype=np.float32)
            video[sample_id] = list(rng.standard_normal((video_frames[index], 1, 256), dtype=np.float32))
            index += 1
        (out_dir / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for folder, name, features in [("audio_data", "audio_feats.pkl", audio), ("video_data", "video_feats.pkl", video)]:
        (out_dir / folder).mkdir(exist_ok=True)
        with open(out_dir / folder / name, "wb") as file:
            pickle.dump(features, file, protocol=4)
    return {
        "clips": total,
        "split_sizes": SPLIT_SIZES,
        "audio_frames": {"mean": float(audio_frames.mean()), "median": float(np.median(audio_frames)),
                         "max": int(audio_frames.max())},
        "video_frames": {"mean": float(video_frames.mean()), "median": float(np.median(video_frames)),
                         "max": int(video_frames.max())},
        "mean_duration_s": float(durations.mean()),
        "feature_bytes_float32": int(audio_frames.sum() * 768 * 4 + video_frames.sum() * 256 * 4),
        "pickle_bytes": sum((out_dir / f).stat().st_size for f in ["audio_data/audio_feats.pkl", "video_data/video_feats.pkl"]),
    }  # fmt: skip


def _memory_status() -> dict:
    """Current VmRSS / RssAnon / RssFile of this process, in bytes."""
    with open("/proc/self/status") as file:
        fields = dict(line.split(":", 1) for line in file)
    return {key: int(fields[key].split()[0]) * 1024 for key in ("VmRSS", "RssAnon", "RssFile")}


def measure(raw_dir: str, out_dir: str, use_tracemalloc: bool) -> dict:
    """Runs in a child process; returns the measurements as a dict."""
    import tracemalloc

    import datasets

    from datasets_scripts.convert import convert_to_parquet

    datasets.disable_progress_bars()
    baseline = _memory_status()
    if use_tracemalloc:
        tracemalloc.start()
        convert_to_parquet(raw_dir, out_dir, benchmark="MIntRec")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {"tracemalloc_peak_bytes": peak}

    samples, stop = [], threading.Event()

    def sample_memory():
        while not stop.is_set():
            samples.append(_memory_status())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample_memory, daemon=True)
    sampler.start()
    start = time.perf_counter()
    convert_to_parquet(raw_dir, out_dir, benchmark="MIntRec")
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    after = _memory_status()
    return {
        "wall_s": wall,
        "baseline_rss_bytes": baseline["VmRSS"],
        "peak_rss_bytes_getrusage": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "peak_rss_bytes_sampled": max(sample["VmRSS"] for sample in samples),
        "peak_anon_rss_bytes_sampled": max(sample["RssAnon"] for sample in samples),
        "peak_file_rss_bytes_sampled": max(sample["RssFile"] for sample in samples),
        "rss_bytes_after_conversion": after["VmRSS"],
    }


def run_child(*arguments: str) -> dict:
    """Run this script with hidden arguments in a fresh process; returns the JSON it prints last.

    Every step runs in a child so this parent stays small: on Linux a child inherits the peak RSS of the
    process it was forked from (ru_maxrss survives exec), which would otherwise inflate the measurement."""
    command = [sys.executable, __file__, *arguments]
    result = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_conversion(raw_dir: Path, out_dir: Path, use_tracemalloc: bool) -> dict:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    return run_child("--_measure", str(raw_dir), str(out_dir), *(["--_tracemalloc"] if use_tracemalloc else []))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", default=None, help="scratch folder (default: a temporary folder, deleted)")
    parser.add_argument("--results_dir", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--_measure", nargs=2, metavar=("RAW", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--_tracemalloc", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_write_release", metavar="DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        print(json.dumps(measure(*args._measure, use_tracemalloc=args._tracemalloc)))
        return
    if args._write_release:
        print(json.dumps(write_mintrec_sized_release(Path(args._write_release))))
        return

    work_dir = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-data-conversion-"))
    try:
        start = time.perf_counter()
        release = run_child("--_write_release", str(work_dir / "MIntRec"))
        print(f"release written in {time.perf_counter() - start:.1f} s: {json.dumps(release)}", flush=True)
        run = run_conversion(work_dir / "MIntRec", work_dir / "parquet", use_tracemalloc=False)
        parquet_bytes = sum(p.stat().st_size for p in (work_dir / "parquet" / "data").glob("*.parquet"))
        shards = sorted(p.name for p in (work_dir / "parquet" / "data").glob("*.parquet"))
        # Uncompressed Arrow bytes of all splits, as recorded in the card: Array2D((None, D)) is stored as
        # list<list<float32>>, so this minus the float32 payload is the cost of the two offset buffers.
        arrow_bytes = DatasetCard.load(work_dir / "parquet" / "README.md").data["dataset_info"]["dataset_size"]
        traced = run_conversion(work_dir / "MIntRec", work_dir / "parquet_traced", use_tracemalloc=True)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work_dir, ignore_errors=True)

    features = release["feature_bytes_float32"]
    peak = max(run["peak_rss_bytes_getrusage"], run["peak_rss_bytes_sampled"])
    result = {
        "benchmark": "MIntRec-sized release -> Parquet (python -m datasets_scripts convert)",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "release": release,
        "wall_s": round(run["wall_s"], 2),
        "peak_rss_bytes": peak,
        "peak_anon_rss_bytes": run["peak_anon_rss_bytes_sampled"],
        "peak_file_rss_bytes": run["peak_file_rss_bytes_sampled"],
        "baseline_rss_bytes_after_imports": run["baseline_rss_bytes"],
        "rss_bytes_after_conversion": run["rss_bytes_after_conversion"],
        "peak_rss_over_feature_bytes": round(peak / features, 3),
        "peak_rss_minus_baseline_over_feature_bytes": round((peak - run["baseline_rss_bytes"]) / features, 3),
        "tracemalloc_peak_bytes": traced["tracemalloc_peak_bytes"],
        "tracemalloc_peak_over_feature_bytes": round(traced["tracemalloc_peak_bytes"] / features, 3),
        "arrow_bytes": arrow_bytes,
        "arrow_overhead_over_feature_bytes": round(arrow_bytes / features - 1, 5),
        "parquet_bytes": parquet_bytes,
        "parquet_shards": shards,
        "streamed": peak < 2 * features,
    }
    results_dir = Path(args.results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "data_conversion.json").write_text(json.dumps(result, indent=2) + "\n")
    mib = lambda n: f"{n / 2**20:,.0f} MiB"  # noqa: E731
    (results_dir / "data_conversion.md").write_text(
        f"""# Data conversion benchmark (MIntRec-sized release -> Parquet)

`python benchmarks/bench_data_conversion.py` on {result['machine']['cpus']} CPUs ({result['machine']['platform']}).

Release: {release['clips']:,} clips (1,334 / 445 / 445), mean clip {release['mean_duration_s']:.2f} s; audio frames
mean {release['audio_frames']['mean']:.0f} / max {release['audio_frames']['max']} (x 768), video frames mean
{release['video_frames']['mean']:.0f} / max {release['video_frames']['max']} (x 256, stored as lists of (1, 256) arrays).
Features: {mib(features)} as float32; pickles on disk {mib(release['pickle_bytes'])}.

| measure | value |
|---|---|
| wall time (release -> Parquet shards + card) | {result['wall_s']:.1f} s |
| peak RSS | {mib(peak)} ({result['peak_rss_over_feature_bytes']:.2f} x the features) |
| peak anonymous / file-backed RSS | {mib(result['peak_anon_rss_bytes'])} / {mib(result['peak_file_rss_bytes'])} |
| RSS after imports (baseline) | {mib(run['baseline_rss_bytes'])} |
| peak RSS - baseline | {mib(peak - run['baseline_rss_bytes'])} ({result['peak_rss_minus_baseline_over_feature_bytes']:.2f} x the features) |
| RSS after the conversion (pickles freed) | {mib(result['rss_bytes_after_conversion'])} |
| tracemalloc peak (Python heap incl. numpy) | {mib(result['tracemalloc_peak_bytes'])} ({result['tracemalloc_peak_over_feature_bytes']:.2f} x the features) |
| Arrow size of all splits (uncompressed) | {mib(arrow_bytes)} ({100 * result['arrow_overhead_over_feature_bytes']:.2f} % over the float32 features: Array2D offsets + text/metadata columns) |
| Parquet output | {mib(parquet_bytes)} in {len(shards)} shards |

Streamed: {'yes' if result['streamed'] else 'NO'} (peak RSS below 2 x the feature size). The peak is one unpickled copy of
the feature pickles (a pickle is one dict and must be loaded whole) plus the interpreter: examples go from
the pickles straight to Parquet row groups of 32 examples (no intermediate Arrow copy), each pickle is
freed after its last split and its heap pages are handed back to the OS (malloc_trim), so the RSS after
the conversion is back near the baseline.
"""
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
