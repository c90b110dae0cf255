#!/usr/bin/env python
"""Is the modulation token-level? How much the cue word's kernel moves, against the other tokens', when only the
non-verbal cue is removed.

The synthetic default release puts each cue (a mocking tone, a smirk) on the frames of one word of the utterance
(`synthetic_metadata.json`). The generator draws everything else independently of the cue's strength, so the same
release written with `nonverbal_signal=0` holds the same clips without the cue. For every cued test clip, the script
runs a trained DyKen-Hyena on both and measures, per token, how far its generated kernel moves (L2 norm over heads
and taps). Token-level modulation means the cue word's kernel moves much more than the other tokens':

    locality = mean movement of the cue word's tokens / mean movement of the other word-piece tokens

reported per pair of intents and per checkpoint (seed). 1 = the cue reaches every token alike.

    python train_accelerate.py --fusion dyken --seeds 0 --output_dir outputs/seed_0   # the default job, per seed
    python benchmarks/kernel_locality.py outputs/seed_0/dyken/best_checkpoint [outputs/seed_1/... ...]

writes benchmarks/results/kernel_locality.{json,md}.
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datasets_scripts import load_any, synthetic  # noqa: E402
from modeling_dyken import DyKenForSequenceClassification  # noqa: E402
from processing_dyken import DyKenProcessor  # noqa: E402
from dyken_hyena.reporting import cue_word_characters  # noqa: E402

COLUMNS = ["id", "text", "label", "audio_features", "video_features"]


def releases():
    """The default release (as the default job trains on it) and its twin without the cue, test split."""
    release_with_cue = synthetic.ensure_release("MIntRec")
    with_cue = load_any(release_with_cue)["test"]
    without_cue = load_any(synthetic.ensure_release("MIntRec", nonverbal_signal=0.0))["test"]
    metadata = json.loads((release_with_cue / "synthetic_metadata.json").read_text(encoding="utf-8"))
    return with_cue.with_format("numpy", columns=COLUMNS), without_cue.with_format("numpy", columns=COLUMNS), metadata


def kernels(model, processor, rows) -> torch.Tensor:
    batch = processor.collate([{key: row[key] for key in ("text", "audio_features", "video_features")} for row in rows])
    with torch.no_grad():
        return model(**batch, output_dynamic_kernels=True).dynamic_kernels.flatten(2)  # (B, L, heads * taps)


def measure(checkpoint: Path, with_cue, without_cue, metadata, batch_size: int = 32) -> dict:
    model = DyKenForSequenceClassification.from_pretrained(checkpoint).eval()
    processor = DyKenProcessor.from_pretrained(checkpoint)
    cues = metadata["cues"]
    cued = [i for i, sample_id in enumerate(with_cue["id"]) if cues.get(str(sample_id), {}).get("cue_on_cue_word")]
    movement = {f"{pair.plain}/{pair.cued}": {"cue_word": [], "other_tokens": []} for pair in synthetic.NONVERBAL_PAIRS}
    for start in range(0, len(cued), batch_size):
        indices = cued[start : start + batch_size]
        rows_with, rows_without = [with_cue[i] for i in indices], [without_cue[i] for i in indices]
        assert all(str(a["text"]) == str(b["text"]) for a, b in zip(rows_with, rows_without)), "the twins differ"
        moved = (kernels(model, processor, rows_with) - kernels(model, processor, rows_without)).norm(dim=-1)  # (B, L)
        for row, token_movement in zip(rows_with, moved):
            cue = cues[str(row["id"])]
            encoding = processor.tokenizer(str(row["text"]), truncation=True, max_length=processor.max_text_length,
                                           return_offsets_mapping=True)
            start_char, end_char = cue_word_characters(str(row["text"]), cue)
            on_cue = [s < end_char and e > start_char for s, e in encoding["offset_mapping"]]
            is_word_piece = [e > s for s, e in encoding["offset_mapping"]]  # [CLS] / [SEP] have empty spans
            name = "/".join(cue["pair"])
            for position, (cue_token, word_piece) in enumerate(zip(on_cue, is_word_piece)):
                if word_piece:
                    movement[name]["cue_word" if cue_token else "other_tokens"].append(float(token_movement[position]))
    result = {}
    for name, values in movement.items():
        cue_word, others = np.mean(values["cue_word"]), np.mean(values["other_tokens"])
        result[name] = {"cue_word": float(cue_word), "other_tokens": float(others), "locality": float(cue_word / others)}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="DyKen-Hyena checkpoints of the default job.")
    parser.add_argument("--results_name", default="kernel_locality", help="benchmarks/results/NAME.{json,md}")
    args = parser.parse_args()
    with_cue, without_cue, metadata = releases()
    records = []
    for checkpoint in args.checkpoints:
        training_args = checkpoint / "training_args.json"
        seed = json.loads(training_args.read_text())["seed"] if training_args.is_file() else None
        for pair, values in measure(checkpoint, with_cue, without_cue, metadata).items():
            records.append({"checkpoint": checkpoint.name if seed is None else f"seed {seed}", "pair": pair, **values})
            print(json.dumps(records[-1]), flush=True)
    command = "python benchmarks/kernel_locality.py " + shlex.join(sys.argv[1:])
    lines = ["| checkpoint | pair | cue-word kernel movement | other tokens' | locality (ratio) |", "|---|---|---|---|---|"]
    lines += [f"| {r['checkpoint']} | {r['pair']} | {r['cue_word']:.4f} | {r['other_tokens']:.4f} | {r['locality']:.2f} |"
              for r in records]
    results = ROOT / "benchmarks" / "results"
    (results / f"{args.results_name}.json").write_text(json.dumps({"command": command, "runs": records}, indent=1))
    (results / f"{args.results_name}.md").write_text(
        f"# Token-level modulation: kernel movement when only the cue is removed\n\n`{command}`\n\n" + "\n".join(lines) + "\n"
    )
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
