#!/usr/bin/env python
"""The paper's ablation table in one command: DyKen-Hyena, without the dynamic short convolution, without the long
convolution, without gating, and kernel sizes 1 / 3 / 5, over seeds, through train_accelerate.py.

    python benchmarks/ablations.py                                  # built-in synthetic MIntRec2.0 release (+ OOS)
    python benchmarks/ablations.py --seeds 0 1 2 3 4 5 6 7 8 9 -- \\
        --preset mintrec2 --dataset mintrec2 --data_dir /data/MIntRec2.0 --model_name_or_path bert-base-uncased

Options after `--` go to every training run (the data, the encoder, the protocol); each row adds its own switch.
With out-of-scope data (MIntRec2.0) the table has F1-IS and F1-OOS next to ACC and F1, as the paper's. Writes
benchmarks/results/NAME.{json,md} (mean ± std over the seeds, and every run).
"""

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Each row of the paper's ablation table, as the trainer's switches.
ROWS = {
    "DyKen-Hyena (Ks = 3)": [],
    "w/o dynamic short conv": ["--no-use_dynamic_short_conv"],
    "w/o long conv": ["--no-use_long_conv"],
    "w/o gating": ["--no-use_gating"],
    # A softmax over one tap is always 1 (the audio and video would not reach the model): Ks = 1 uses the gated one.
    "Ks = 1": ["--short_kernel_size", "1", "--kernel_normalization", "gated_softmax"],
    "Ks = 5": ["--short_kernel_size", "5"],
}
# The default data: the trainer's built-in MIntRec2.0-format release, whose paired intents need the non-verbal cue
# and whose out-of-scope utterances are scored by the open-set metrics.
DEFAULT_TRAINER_ARGS = ["--dataset", "synthetic", "--benchmark", "MIntRec2.0", "--num_train_epochs", "8"]
METRICS = {"accuracy": "ACC", "f1_macro": "F1", "f1_is": "F1-IS", "f1_oos": "F1-OOS"}


def main() -> int:
    argv = sys.argv[1:]
    trainer_args = argv[argv.index("--") + 1 :] if "--" in argv else DEFAULT_TRAINER_ARGS
    own_args = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS), help="Rows to run.")
    parser.add_argument("--output_dir", type=Path, default=Path("outputs") / "ablations")
    parser.add_argument("--results_name", default="ablations", help="benchmarks/results/NAME.{json,md}")
    args = parser.parse_args(own_args)

    runs = []
    for row in args.rows:
        output_dir = args.output_dir / row.replace(" ", "_").replace("/", "").replace("(", "").replace(")", "")
        command = [sys.executable, str(ROOT / "train_accelerate.py"), *trainer_args, *ROWS[row], "--fusion", "dyken",
                   "--seeds", *map(str, args.seeds), "--output_dir", str(output_dir), "--overwrite_output_dir",
                   "--report_to", "none"]
        print(f"[{row}] {shlex.join(command)}", flush=True)
        start = time.time()
        subprocess.run(command, check=True)
        for run in json.loads((output_dir / "results.json").read_text(encoding="utf-8"))["runs"]:
            runs.append({"row": row, "seed": run["seed"], **{m: run["test"].get(m) for m in METRICS}})
        print(f"[{row}] {time.time() - start:.0f} s", flush=True)

    metrics = [m for m in METRICS if all(run[m] is not None for run in runs)]
    lines = ["| | " + " | ".join(METRICS[m] for m in metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    summary = {}
    for row in args.rows:
        values = {m: [100 * run[m] for run in runs if run["row"] == row] for m in metrics}
        summary[row] = {m: {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0}
                        for m, v in values.items()}
        lines.append(f"| {row} | " + " | ".join(f"{summary[row][m]['mean']:.2f} ± {summary[row][m]['std']:.2f}"
                                                 for m in metrics) + " |")
    command = "python benchmarks/ablations.py " + shlex.join(argv)
    results = ROOT / "benchmarks" / "results"
    (results / f"{args.results_name}.json").write_text(
        json.dumps({"command": command, "trainer_args": trainer_args, "summary": summary, "runs": runs}, indent=1)
    )
    (results / f"{args.results_name}.md").write_text(
        f"# Ablations (test, %, mean ± std over seeds {', '.join(map(str, args.seeds))})\n\n`{command}`\n\n"
        + "\n".join(lines) + "\n"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
