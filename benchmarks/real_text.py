#!/usr/bin/env python
"""DyKen-Hyena against text-only BERT on real language: the MIntRec2.0 in-scope utterances paired with
uninformative (random) audio and video features, trained through train_accelerate.py as a user would.

With no usable signal in the non-verbal input, DyKen-Hyena should do as well as the text model it is built on. The
texts and labels are the real ones (a folder with the official train.tsv / dev.tsv / test.tsv of MIntRec2.0's
in-scope data); the features are Gaussian noise with the official widths (WavLM 768, Swin RoI 256) and lengths that
follow each utterance's duration (its timestamps; 50 audio frames per second, times --length_scale).

    python benchmarks/real_text.py --text_dir PATH/TO/mintrec2-text --seeds 0 1 2

writes the release once (into --release_dir, default a cache folder), runs every --runs entry for every seed, and
records benchmarks/results/real_text.{json,md} (per run and mean ± std of test accuracy and macro F1).
"""

import argparse
import csv
import hashlib
import json
import os
import pickle
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "benchmarks" / "results"
SPLITS = ("train", "dev", "test")
AUDIO_DIM, VIDEO_DIM = 768, 256
MAX_AUDIO, MAX_VIDEO = 400, 180  # the official MIntRec2.0 maxima
AUDIO_FPS = 50  # WavLM / wav2vec 2.0: one frame per 20 ms
VIDEO_PER_AUDIO_FRAME = 0.45  # the official releases hold about 0.42-0.5 video frames per audio frame
SECONDS_PER_WORD = 0.35  # for the few rows whose timestamps cannot be read
DEFAULT_RUNS = ["text=--fusion text", "dyken=--fusion dyken"]
# The budget of the comparison: the packaged MiniLM encoder, 4 epochs, the trainer's defaults otherwise.
COMMON_ARGS = ["--model_name_or_path", "all-MiniLM-L6-v2", "--num_train_epochs", "4", "--report_to", "none",
               "--checkpointing_steps", "no", "--no-open_set"]


def seconds(timestamp: str) -> float | None:
    """'00:00:02,035' -> 2.035; None when the field is not a timestamp."""
    try:
        clock, millis = timestamp.strip().split(",")
        hours, minutes, secs = clock.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + int(secs) + int(millis) / 1000
    except ValueError:
        return None


def write_release(text_dir: Path, release_dir: Path, length_scale: float, seed: int) -> Path:
    """The real in-scope TSVs with random features, in the official MIntRec2.0 layout."""
    in_scope = release_dir / "in-scope"
    if (release_dir / "release_complete.json").is_file():
        return release_dir
    rng = np.random.default_rng(seed)
    audio, video = {}, {}
    in_scope.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        source = text_dir / f"{split}.tsv"
        text = source.read_text(encoding="utf-8")
        (in_scope / f"{split}.tsv").write_text(text, encoding="utf-8")
        for row in csv.DictReader(text.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE):
            sample_id = f"dia{row['Dialogue_id']}_utt{row['Utterance_id']}"
            start, end = seconds(row["Start_timestamp"]), seconds(row["End_timestamp"])
            duration = end - start if start is not None and end is not None and end > start else None
            duration = duration or SECONDS_PER_WORD * max(1, len(row["Text"].split()))
            num_audio = int(np.clip(round(duration * AUDIO_FPS * length_scale), 2, MAX_AUDIO))
            num_video = int(np.clip(round(num_audio * VIDEO_PER_AUDIO_FRAME), 1, MAX_VIDEO))
            audio[sample_id] = rng.standard_normal((num_audio, AUDIO_DIM), dtype=np.float32)
            video[sample_id] = rng.standard_normal((num_video, VIDEO_DIM), dtype=np.float32)
    for folder, name, features in (("audio_data", "wavlm_feats_binary.pkl", audio),
                                   ("video_data", "swin_roi_binary.pkl", video)):
        (in_scope / folder).mkdir(exist_ok=True)
        with open(in_scope / folder / name, "wb") as file:
            pickle.dump(features, file, protocol=4)
    (release_dir / "release_complete.json").write_text(json.dumps({"length_scale": length_scale, "seed": seed}))
    return release_dir


def summarize(values: list[float]) -> dict:
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text_dir", type=Path, required=True,
                        help="Folder with MIntRec2.0's in-scope train.tsv, dev.tsv, test.tsv (official header).")
    parser.add_argument("--release_dir", type=Path, default=None,
                        help="Where the release with random features is written (default: a cache folder).")
    parser.add_argument("--length_scale", type=float, default=0.25,
                        help="Feature lengths relative to the real frame rates (1 = 50 audio frames per second).")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", nargs="+", default=DEFAULT_RUNS,
                        help="NAME=TRAINER_ARGS entries, each trained for every seed on the same data and budget.")
    parser.add_argument("--output_dir", type=Path, default=Path("outputs") / "real_text")
    parser.add_argument("--results_name", default="real_text", help="benchmarks/results/NAME.{json,md}")
    args = parser.parse_args()

    key = hashlib.sha256(f"{args.length_scale}".encode()).hexdigest()[:8]
    cache = Path(os.environ.get("DYKEN_CACHE", Path.home() / ".cache" / "dyken-hyena"))
    release_dir = write_release(args.text_dir, args.release_dir or cache / f"mintrec2-real-text-{key}", args.length_scale, 0)

    runs = dict(entry.split("=", 1) for entry in args.runs)
    records = []
    for name, extra in runs.items():
        output_dir = args.output_dir / name
        command = [sys.executable, str(REPO_ROOT / "train_accelerate.py"), "--dataset", "mintrec2", "--data_dir",
                   str(release_dir), "--output_dir", str(output_dir), "--overwrite_output_dir", "--seeds",
                   *map(str, args.seeds), *COMMON_ARGS, *shlex.split(extra)]
        print(f"[{name}] {shlex.join(command)}", flush=True)
        start = time.time()
        subprocess.run(command, check=True)
        results = json.loads((output_dir / "results.json").read_text(encoding="utf-8"))
        for run in results["runs"]:
            records.append({"name": name, "args": extra, "seed": run["seed"], "accuracy": run["test"]["accuracy"],
                            "f1_macro": run["test"]["f1_macro"], "best_epoch": run["best_epoch"]})
        print(f"[{name}] {time.time() - start:.0f} s", flush=True)

    table = ["| run | trainer options | seeds | test ACC (%) | test macro-F1 (%) |", "|---|---|---|---|---|"]
    summary = {}
    for name, extra in runs.items():
        mine = [record for record in records if record["name"] == name]
        summary[name] = {metric: summarize([100 * r[metric] for r in mine]) for metric in ("accuracy", "f1_macro")}
        cells = [f"{summary[name][m]['mean']:.2f} ± {summary[name][m]['std']:.2f}" for m in ("accuracy", "f1_macro")]
        table.append(f"| {name} | `{extra}` | {len(mine)} | {cells[0]} | {cells[1]} |")
    command = "python benchmarks/real_text.py " + shlex.join(sys.argv[1:])
    markdown = (f"# Real MIntRec2.0 text, uninformative audio/video\n\n`{command}`\n\n"
                f"Common trainer options: `{shlex.join(COMMON_ARGS)}`; features at length scale {args.length_scale}.\n\n"
                + "\n".join(table) + "\n\nPer run:\n\n| run | seed | ACC | F1 | best epoch |\n|---|---|---|---|---|\n"
                + "\n".join(f"| {r['name']} | {r['seed']} | {100 * r['accuracy']:.2f} | {100 * r['f1_macro']:.2f} | "
                            f"{r['best_epoch']} |" for r in records) + "\n")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.results_name}.json").write_text(
        json.dumps({"command": command, "common_args": COMMON_ARGS, "length_scale": args.length_scale,
                    "summary": summary, "runs": records}, indent=1), encoding="utf-8")
    (RESULTS / f"{args.results_name}.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
