"""When does a model learn the non-verbal cue? Per-epoch pair accuracy and cue effect on a synthetic release.

    python benchmarks/cue_learning.py                                   # the default job's data, DyKen-Hyena
    python benchmarks/cue_learning.py --fusion mag --epochs 6
    python benchmarks/cue_learning.py --pairs_only --num_train 2000     # only the six paired intents
    python benchmarks/cue_learning.py --clip_offset_std 1 --distractor_rate 0.25 --vary_pair_sentences

Two releases are written that differ only by the cue (`nonverbal_signal` S and 0: the generator draws everything
else identically). After each epoch, for each pair (Praise/Taunt, Inform/Joke, Complain/Criticize) on the dev
clips of that pair, the script prints
    accuracy   of the pair decision (sign of the cued-minus-plain logit margin),
    cue effect the mean change of that margin on cued clips when only the cue is removed (0 = the cue is unused),
    spread     the standard deviation of the margin.
and appends the same numbers to --log (JSON lines). docs/experiments.md reports what it measured.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_scheduler

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from datasets_scripts import load_any, synthetic  # noqa: E402
import train_accelerate  # noqa: E402
from modeling_dyken import resolve_text_model_path  # noqa: E402
from processing_dyken import DyKenProcessor  # noqa: E402

COLUMNS = ["text", "label", "audio_features", "video_features"]


def parse_args():
    defaults = synthetic.DEFAULT_RELEASE_PARAMS["MIntRec"]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fusion", default="dyken", choices=["dyken", "mag", "text"])
    parser.add_argument("--alignment", default="none", choices=["ctc", "avg_pool", "conv1d", "none"],
                        help="DyKen's; MAG-BERT uses ctc for none (as the trainer).")
    parser.add_argument("--num_train", type=int, default=defaults["num_train"])
    parser.add_argument("--num_dev", type=int, default=defaults["num_dev"])
    parser.add_argument("--nonverbal_signal", type=float, default=defaults["nonverbal_signal"])
    parser.add_argument("--clip_offset_std", type=float, default=defaults["clip_offset_std"])
    parser.add_argument("--distractor_rate", type=float, default=defaults["distractor_rate"])
    parser.add_argument("--vary_pair_sentences", action="store_true", default=defaults["vary_pair_sentences"])
    parser.add_argument("--length_scale", type=float, default=defaults["length_scale"])
    parser.add_argument("--pairs_only", action="store_true", help="Train on the six paired intents only.")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--learning_rate", type=float, default=5e-5, help="Pretrained encoder.")
    parser.add_argument("--fusion_learning_rate", type=float, default=1e-3, help="New layers.")
    parser.add_argument("--modulation_learning_rate", type=float, default=1e-3, help="The Hyena operator.")
    parser.add_argument("--dropout", type=float, default=0.0, help="As the trainer's --dropout.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model_config_overrides", type=json.loads, default={}, help="Other DyKenConfig fields (JSON).")
    parser.add_argument("--data_root", default="benchmarks/.cue_learning_data", help="Cache of the releases and their Arrow files.")
    parser.add_argument("--log", default="benchmarks/results/cue_learning.jsonl")
    return parser.parse_args()


def load_release(args, signal: float):
    """The release with these parameters, written on first use (cached in --data_root under a hash of them)."""
    release_dir = synthetic.ensure_release(
        "MIntRec", cache_dir=args.data_root, num_train=args.num_train, num_dev=args.num_dev, num_test=args.num_dev,
        seed=0, nonverbal_signal=signal, length_scale=args.length_scale, clip_offset_std=args.clip_offset_std,
        distractor_rate=args.distractor_rate, vary_pair_sentences=args.vary_pair_sentences,
    )
    splits = load_any(release_dir, cache_dir=args.data_root)
    return splits.with_format("numpy", columns=COLUMNS)


def dev_logits(model, dataset, processor):
    model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=64, collate_fn=processor.collate)
    with torch.no_grad():
        logits = torch.cat([model(**model_inputs(batch)).logits for batch in loader])
    model.train()
    return logits


def model_inputs(batch) -> dict:
    return {key: value for key, value in batch.items() if key != "labels" and not key.endswith("_lengths")}


def main():
    args = parse_args()
    torch.manual_seed(args.seed)
    with_cue, without_cue = load_release(args, args.nonverbal_signal), load_release(args, 0.0)
    names = with_cue["train"].features["label"].names
    pairs = [(names.index(pair.plain), names.index(pair.cued), f"{pair.plain}/{pair.cued}")
             for pair in synthetic.NONVERBAL_PAIRS]
    train = with_cue["train"]
    if args.pairs_only:
        paired_ids = {label for plain, cued, _ in pairs for label in (plain, cued)}
        train = train.filter(lambda label: label in paired_ids, input_columns="label")

    # The model and optimizer exactly as the trainer builds them for these options.
    trainer_args = train_accelerate.parse_args([
        "--fusion", args.fusion, "--alignment", args.alignment, "--dropout", str(args.dropout),
        "--learning_rate", str(args.learning_rate), "--fusion_learning_rate", str(args.fusion_learning_rate),
        "--modulation_learning_rate", str(args.modulation_learning_rate),
        "--model_config_overrides", json.dumps(args.model_config_overrides),
    ])
    tokenizer = AutoTokenizer.from_pretrained(resolve_text_model_path(trainer_args.model_name_or_path))
    processor = DyKenProcessor.for_benchmark("MIntRec", tokenizer, padding="longest")
    model = train_accelerate.build_model(trainer_args, args.fusion, SimpleNamespace(label_names=names), processor)
    optimizer = torch.optim.AdamW(train_accelerate.optimizer_parameter_groups(model, trainer_args))
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True,
                                         collate_fn=processor.collate,
                                         generator=torch.Generator().manual_seed(args.seed))
    total_steps = args.epochs * len(loader)
    scheduler = get_scheduler("linear", optimizer, int(0.1 * total_steps), total_steps)

    dev_labels = np.asarray(with_cue["validation"]["label"])
    Path(args.log).parent.mkdir(parents=True, exist_ok=True)
    started = time.time()

    def report(epoch: int, train_loss: float | None):
        logits = dev_logits(model, with_cue["validation"], processor)
        logits_without_cue = dev_logits(model, without_cue["validation"], processor)
        record = dict(vars(args), epoch=epoch, train_loss=train_loss, seconds=round(time.time() - started, 1),
                      dev_accuracy=float((logits.argmax(-1).numpy() == dev_labels).mean()), pairs={})
        line = f"epoch {epoch}: dev acc {record['dev_accuracy']:.3f} |"
        for plain, cued, name in pairs:
            in_pair = np.isin(dev_labels, [plain, cued])
            is_cued = dev_labels[in_pair] == cued
            margin = (logits[in_pair, cued] - logits[in_pair, plain]).numpy()
            margin_without_cue = (logits_without_cue[in_pair, cued] - logits_without_cue[in_pair, plain]).numpy()
            stats = dict(accuracy=float(((margin > 0) == is_cued).mean()),
                         cue_effect=float((margin - margin_without_cue)[is_cued].mean()),
                         spread=float(margin.std()))
            record["pairs"][name] = stats
            line += f" {name} acc {stats['accuracy']:.2f} cue effect {stats['cue_effect']:+.2f} spread {stats['spread']:.2f} |"
        print(line, flush=True)
        with open(args.log, "a", encoding="utf-8") as file:
            file.write(json.dumps(record) + "\n")

    report(0, None)
    for epoch in range(1, args.epochs + 1):
        losses = []
        for batch in tqdm(loader, desc=f"epoch {epoch}", leave=False):
            loss = model(**model_inputs(batch), labels=batch["labels"]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        report(epoch, float(np.mean(losses)))


if __name__ == "__main__":
    main()
