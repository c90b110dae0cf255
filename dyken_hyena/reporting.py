# Copyright 2026 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""What a job shows: the results table (results.md) and the plots (training curves, confusion matrices, DyKen's
per-token kernels)."""

import argparse
import json
import textwrap
from pathlib import Path

import numpy as np
import torch

from datasets_scripts import MINTREC2_OOS_LABEL, synthetic
from modeling_dyken import DyKenForSequenceClassification

from .arguments import CLOSED_SET_METRICS, OPEN_SET_METRICS

FUSION_NAMES = {"dyken": "DyKen-Hyena", "mag": "MAG-BERT", "text": "Text-only BERT"}


def percent(stats) -> str:
    if stats is None or stats.get("mean") is None:
        return "n/a"
    return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}"


def diverged_note(run: dict) -> str:
    """For the per-run table: a run whose training loss stopped being finite reports its best weights before that."""
    step = run.get("diverged_at_step")  # absent from the results of earlier trainer versions that a job may reuse
    return "" if step is None else f" (training diverged at step {step})"


def results_markdown(args: argparse.Namespace, data, results: list[dict], summary: dict) -> str:
    """results.md: test metrics per fusion (mean ± std over seeds), open-set metrics, the intents that need
    non-verbal cues (synthetic data), and one row per run. `data` is the job's `IntentData`."""
    fusion_names = FUSION_NAMES
    lines = [
        f"# Results: {data.benchmark} ({args.dataset})",
        "",
        f"Model `{args.model_name_or_path}`; seeds {', '.join(map(str, args.seeds))}; best epoch chosen on dev "
        f"`{args.metric_for_best_model}`. Test metrics in %, mean ± sample std over seeds.",
        "",
        "| Method | ACC | F1 | P | R | WF1 | WP |",
        "|---|---|---|---|---|---|---|",
    ]
    for fusion, metrics in summary.items():
        cells = [percent(metrics.get(m)) for m in CLOSED_SET_METRICS]
        lines.append(f"| {fusion_names[fusion]} | " + " | ".join(cells) + " |")
    if data.oos_label_id is not None:
        lines += ["", f"Open set ({args.ood_detector} out-of-scope detection; FPR95: lower is better):", "",
                  "| Method | F1-IS | F1-OOS | Open ACC | Open F1 | AUROC | FPR95 |", "|---|---|---|---|---|---|---|"]
        for fusion, metrics in summary.items():
            lines.append(f"| {fusion_names[fusion]} | " + " | ".join(percent(metrics.get(m)) for m in OPEN_SET_METRICS) + " |")
    nonverbal = [name for name in synthetic.NONVERBAL_INTENTS if name in data.label_names] if data.is_synthetic else []
    if nonverbal:
        lines += ["", "Intents that need non-verbal cues (synthetic data; test F1 in %, and their mean):", "",
                  "| Method | " + " | ".join(nonverbal) + " | mean | other intents |",
                  "|---|" + "---|" * (len(nonverbal) + 2)]
        for fusion in summary:
            runs = [run for run in results if run["fusion"] == fusion]
            per_class = {name: [run["test_per_class_f1"][name] for run in runs] for name in data.label_names}
            others = [np.mean([run["test_per_class_f1"][n] for n in data.label_names if n not in nonverbal]) for run in runs]
            cells = [percent({"mean": np.mean(per_class[n]), "std": np.std(per_class[n], ddof=1) if len(runs) > 1 else 0.0})
                     for n in nonverbal]
            cells.append(percent(summary[fusion]["nonverbal_f1_macro"]))
            cells.append(percent({"mean": np.mean(others), "std": np.std(others, ddof=1) if len(runs) > 1 else 0.0}))
            lines.append(f"| {fusion_names[fusion]} | " + " | ".join(cells) + " |")
    lines += ["", "Per run:", "", "| Method | Seed | Best epoch | Dev " + args.metric_for_best_model
              + " | Test ACC | Test F1 |", "|---|---|---|---|---|---|"]
    for run in results:
        lines.append(
            f"| {fusion_names[run['fusion']]} | {run['seed']} | {run['best_epoch']}{diverged_note(run)} | "
            f"{100 * run['validation'][args.metric_for_best_model]:.2f} | {100 * run['test']['accuracy']:.2f} | "
            f"{100 * run['test']['f1_macro']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def make_plots(args: argparse.Namespace, data, processor, output_dir: Path, runs: list[dict]) -> list[Path]:
    """plots/: training curves, a test confusion matrix per fusion (its best seed), DyKen's per-token kernels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    plots_dir = output_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []

    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in runs:
        label = f"{run['result']['fusion']} seed {run['result']['seed']}"
        history = run["details"]["history"]
        steps = [entry["step"] for entry in history]
        loss_axis.plot(steps, [entry["train_loss"] for entry in history], marker="o", label=label)
        metric_axis.plot(steps, [entry["validation"][args.metric_for_best_model] for entry in history],
                         marker="o", label=label)
    loss_axis.set(title="training loss (epoch mean)", xlabel="optimizer step", ylabel="cross-entropy")
    metric_axis.set(title=f"dev {args.metric_for_best_model}", xlabel="optimizer step", ylim=(0, 1))
    metric_axis.legend(fontsize="small")
    figure.tight_layout()
    written.append(plots_dir / "training_curves.png")
    figure.savefig(written[-1], dpi=120)
    plt.close(figure)

    names = list(data.label_names) + ([MINTREC2_OOS_LABEL] if data.oos_label_id is not None else [])
    for fusion in dict.fromkeys(run["result"]["fusion"] for run in runs):
        best = max((run for run in runs if run["result"]["fusion"] == fusion), key=lambda run: run["result"]["validation"][args.metric_for_best_model])
        size = max(6, 0.45 * len(names))
        figure, axis = plt.subplots(figsize=(size + 2, size))
        ConfusionMatrixDisplay.from_predictions(
            best["details"]["test_references"], best["details"]["test_predictions"], labels=list(range(len(names))),
            display_labels=names, xticks_rotation="vertical", ax=axis, colorbar=False, include_values=len(names) <= 31,
        )
        axis.set_title(f"{fusion}: test confusion matrix (seed {best['result']['seed']})")
        figure.tight_layout()
        written.append(plots_dir / f"confusion_matrix_{fusion}.png")
        figure.savefig(written[-1], dpi=110)
        plt.close(figure)

    best_dyken = output_dir / "dyken" / "best_checkpoint"
    if "dyken" in args.fusion and best_dyken.is_dir():
        model = DyKenForSequenceClassification.from_pretrained(best_dyken).eval()
        if model.config.use_dynamic_short_conv:
            written.append(plot_dynamic_kernels(model, data, processor, plots_dir / "dynamic_kernels_dyken.png", plt))
    return written


def cue_word_characters(text: str, cue: dict | None) -> tuple[int, int] | None:
    """Synthetic data: (start, end) characters of the word that carries the non-verbal cue (synthetic_metadata.json)."""
    if cue is None or cue.get("cue_word_index") is None:
        return None
    words = text.split(" ")
    start = len(" ".join(words[: cue["cue_word_index"]])) + (1 if cue["cue_word_index"] else 0)
    return start, start + len(words[cue["cue_word_index"]])


def plot_dynamic_kernels(model, data, processor, path: Path, plt, num_utterances: int = 3) -> Path:
    """Heatmaps of the per-token kernels (tokens x kernel taps of every head) of a few dev utterances of the saved
    DyKen model; on the synthetic data, utterances of the intents with a non-verbal cue (Taunt, Joke, Criticize),
    the tokens of the cue word in red."""
    validation = data.splits["validation"]
    labels = np.asarray(validation["label"])
    preferred = [pair.cued for pair in synthetic.NONVERBAL_PAIRS] if data.is_synthetic else []
    indices = [int(np.flatnonzero(labels == data.label_names.index(name))[0]) for name in preferred
               if name in data.label_names and (labels == data.label_names.index(name)).any()]
    indices = (indices + [i for i in range(len(validation)) if i not in indices])[:num_utterances]
    rows = [validation[i] for i in indices]
    batch = processor.collate(rows)
    batch.pop("labels")
    with torch.no_grad():
        kernels = model(**batch, output_dynamic_kernels=True).dynamic_kernels  # (B, L, H, Ks)
    metadata_file = (data.release_dir or Path("")) / "synthetic_metadata.json"
    cues = {}  # synthetic releases record, for every example of a pair intent, which word carries the cue
    if data.is_synthetic and metadata_file.is_file():
        cues = json.loads(metadata_file.read_text(encoding="utf-8"))["cues"]
    sample_ids = validation.with_format(None).select(indices)["id"]
    heads, taps = kernels.shape[2:]
    figure, axes = plt.subplots(1, len(rows), figsize=(6 * len(rows), 7), squeeze=False)
    for axis, sample_id, row, kernel in zip(axes[0], sample_ids, rows, kernels):
        encoding = processor.tokenizer(
            str(row["text"]), truncation=True, max_length=processor.max_text_length, return_offsets_mapping=True
        )
        tokens = processor.tokenizer.convert_ids_to_tokens(encoding["input_ids"])
        length = len(tokens)
        image = axis.imshow(kernel[:length].reshape(length, heads * taps).numpy(), aspect="auto", cmap="viridis")
        axis.set_yticks(range(length), tokens, fontsize=7)
        cue = cue_word_characters(str(row["text"]), cues.get(sample_id))
        for label, (start, end) in zip(axis.get_yticklabels(), encoding["offset_mapping"]):
            if cue is not None and end > start and start < cue[1] and end > cue[0]:
                label.set_color("red")
        axis.set_xticks([h * taps + taps // 2 for h in range(heads)], [f"h{h}" for h in range(heads)], fontsize=7)
        for h in range(1, heads):
            axis.axvline(h * taps - 0.5, color="white", linewidth=0.5)
        axis.set_xlabel(f"kernel taps ({taps} per head) x heads")
        text = textwrap.shorten(str(row["text"]), width=48, placeholder=" …")
        axis.set_title(f"{data.label_names[int(row['label'])]}: \"{text}\"", fontsize=9)
        figure.colorbar(image, ax=axis, fraction=0.04)
    title = "DyKen-Hyena: per-token short-convolution kernels generated from audio/video (dev utterances)"
    figure.suptitle(title + ("; red: the word that carries the cue" if data.is_synthetic else ""))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
