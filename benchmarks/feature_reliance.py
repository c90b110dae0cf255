#!/usr/bin/env python
"""How much does a trained checkpoint rely on each utterance's own audio and video?

Accuracy on the training and dev splits twice: with every utterance's own features, and with the features of
another utterance of the same batch (rolled by one). A model that reads a cue shared by an intent loses accuracy on
both splits; a model that recognises its training utterances by their features loses it on the training split only.
With uninformative (random) features, the training split's drop is what the model fitted to the noise.

    python benchmarks/feature_reliance.py CHECKPOINT [CHECKPOINT ...] --dataset mintrec2 --data_dir RELEASE

takes the data options of train_accelerate.py (--dataset, --data_dir, --benchmark) and writes
benchmarks/results/NAME.{json,md}.
"""

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dyken_hyena.data import load_intent_data, make_dataloader  # noqa: E402
from modeling_dyken import DyKenForSequenceClassification  # noqa: E402
from processing_dyken import DyKenProcessor  # noqa: E402

def accuracies(model, loader, description: str) -> dict:
    """Accuracy (%) with each utterance's own features ("own") and with its batch neighbour's ("neighbour")."""
    correct = {"own": 0, "neighbour": 0}
    total = 0
    with torch.no_grad():
        for batch in tqdm(loader, desc=description):
            labels = batch.pop("labels")
            rolled = {name: value.roll(1, dims=0) if name.startswith(("audio_", "video_")) else value
                      for name, value in batch.items()}  # features, masks and lengths move together
            for mode, inputs in (("own", batch), ("neighbour", rolled)):
                correct[mode] += (model(**inputs).logits.argmax(-1) == labels).sum().item()
            total += len(labels)
    return {mode: 100 * hits / total for mode, hits in correct.items()} | {"utterances": total}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path, help="DyKen-Hyena or MAG-BERT checkpoints.")
    parser.add_argument("--dataset", default="synthetic", help="As in train_accelerate.py.")
    parser.add_argument("--data_dir", default=None, help="As in train_accelerate.py.")
    parser.add_argument("--benchmark", default=None, help="As in train_accelerate.py.")
    parser.add_argument("--max_utterances", type=int, default=1600, help="Utterances read from each split.")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--results_name", default="feature_reliance", help="benchmarks/results/NAME.{json,md}")
    args = parser.parse_args()
    data = load_intent_data(args.dataset, args.data_dir, args.benchmark, open_set=False)
    records = []
    for checkpoint in args.checkpoints:
        model = DyKenForSequenceClassification.from_pretrained(checkpoint).eval()
        processor = DyKenProcessor.from_pretrained(checkpoint)
        for split in ("train", "validation"):
            rows = data.splits[split].select(range(min(args.max_utterances, len(data.splits[split]))))
            loader = make_dataloader(rows, processor, args.batch_size, shuffle=False)
            records.append({"checkpoint": str(checkpoint), "split": split,
                            **accuracies(model, loader, f"{checkpoint.name} {split}")})
            print(json.dumps(records[-1]), flush=True)
    command = "python benchmarks/feature_reliance.py " + shlex.join(sys.argv[1:])
    lines = ["| checkpoint | split | utterances | ACC, own features | ACC, another utterance's | drop |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['checkpoint']} | {r['split']} | {r['utterances']} | {r['own']:.1f} | {r['neighbour']:.1f} | "
              f"{r['own'] - r['neighbour']:.1f} |" for r in records]
    results = ROOT / "benchmarks" / "results"
    (results / f"{args.results_name}.json").write_text(json.dumps({"command": command, "runs": records}, indent=1))
    (results / f"{args.results_name}.md").write_text(
        f"# Reliance on each utterance's own audio and video\n\n`{command}`\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
