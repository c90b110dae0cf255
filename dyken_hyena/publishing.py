# Copyright 2026 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""Model card and Hub upload of a trained DyKen-Hyena checkpoint.

    python -m dyken_hyena.publishing CHECKPOINT_DIR --hub_model_id USER/NAME [--hub_private_repo]
        [--hub_token TOKEN] [--results results.json] [--training_args args.json] [--synthetic] [--dry_run]

`render_model_card` fills model_cards/model_card_template.md; `push_checkpoint` checks the folder, writes README.md
and uploads the folder, and puts the folder back exactly as it was if anything fails. Metrics are fractions in
[0, 1]: the card's `model-index` keeps them so (the scale of the Hub's evaluation results and of the cards the
transformers `Trainer` writes), its tables show percentages.
"""

import argparse
import json
import math
import re
import sys
from importlib import metadata
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from transformers.dynamic_module_utils import get_relative_import_files
from transformers.utils import CONFIG_NAME, SAFE_WEIGHTS_INDEX_NAME, SAFE_WEIGHTS_NAME

from .hub import HubUploadError, upload_folder


MODEL_CARD_TEMPLATE = Path(__file__).resolve().parents[1] / "model_cards" / "model_card_template.md"

# Configs that may carry an `auto_map` of their own (processor code); they add AutoProcessor to the card's code.
PROCESSOR_CONFIG_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
UPLOAD_IGNORE_PATTERNS = ["__pycache__/**", "**/__pycache__/**", "*.pyc", ".ipynb_checkpoints/**"]

CARD_TAGS = ["multimodal", "intent-recognition", "hyena", "dynamic-convolution", "custom_code"]
# The Hub task of the checkpoint's own pipeline (pipeline_dyken.py: a clip and its transcript in, an intent out). Not
# "text-classification": the text-classification pipeline would feed the model the text alone.
PIPELINE_TAG = "video-classification"
SYNTHETIC_DATA_TAG = "synthetic-data"  # lets the Hub's tag filter show what a demonstration model was trained on
DEFAULT_LICENSE = "apache-2.0"
DEFAULT_COMMIT_MESSAGE = "Upload DyKen-Hyena checkpoint"

# The card names the `transformers` floor the installed distribution declares; from a source tree that is not
# installed, this copy of the floor in pyproject.toml.
DISTRIBUTION_NAME = "dyken-hyena"
FALLBACK_MINIMUM_TRANSFORMERS_VERSION = "5.20"

# Metric key -> (Hub metric type, name on the card, metric args); the name tells apart metrics sharing a type.
CARD_METRICS = {
    "accuracy": ("accuracy", "Accuracy", None),
    "f1_macro": ("f1", "Macro F1", {"average": "macro"}),
    "precision_macro": ("precision", "Macro precision", {"average": "macro"}),
    "recall_macro": ("recall", "Macro recall", {"average": "macro"}),
    "f1_weighted": ("f1", "Weighted F1", {"average": "weighted"}),
    "precision_weighted": ("precision", "Weighted precision", {"average": "weighted"}),
    "f1_is": ("f1", "F1-IS (known classes)", {"average": "macro"}),
    "f1_oos": ("f1", "F1-OOS (out-of-scope class)", None),
    "open_accuracy": ("accuracy", "Open-set accuracy (K+1 classes)", None),
    "open_f1_macro": ("f1", "Open-set macro F1 (K+1 classes)", {"average": "macro"}),
    "auroc": ("roc_auc", "AUROC (out-of-scope vs in-scope)", None),
    "fpr95": ("fpr95", "FPR@95TPR (lower is better)", None),
}
ARCHITECTURE_KEYS = (
    "fusion", "alignment", "short_kernel_size", "use_dynamic_short_conv", "use_long_conv", "use_gating",
    "audio_feature_dim", "video_feature_dim", "max_text_length", "max_audio_length", "max_video_length", "num_labels",
)  # fmt: skip


class CheckpointError(ValueError):
    """The folder is not a complete checkpoint that can be loaded from the Hub with `trust_remote_code=True`."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}).") from None


def _auto_map_modules(auto_map: dict) -> list:
    """The local modules of an `auto_map`: its entries are "module.Class", lists of those (tokenizers: [slow,
    fast], possibly None) or "other/repo--module.Class" (code in another repository)."""
    references = [ref for value in auto_map.values() for ref in (value if isinstance(value, list) else [value])]
    return [ref.rsplit(".", 1)[0] for ref in references if isinstance(ref, str) and "--" not in ref and "." in ref]


def _custom_pipelines(config: dict) -> dict:
    """{task: {"impl": "module.Class", ...}} of a config.json's `custom_pipelines` (written by
    `Pipeline.save_pretrained`), malformed entries left out."""
    pipelines = config.get("custom_pipelines")
    if not isinstance(pipelines, dict):
        return {}
    return {task: entry for task, entry in pipelines.items()
            if isinstance(entry, dict) and isinstance(entry.get("impl"), str)}


def check_checkpoint(checkpoint_dir) -> dict:
    """Check that `checkpoint_dir` holds what loading it from the Hub needs and return its config.json: an
    `auto_map` in config.json, the weights (model.safetensors, or the sharded index and its shards) and the code
    files the `auto_map` entries and the pipelines of `custom_pipelines` name, with their relative imports. Raises
    `CheckpointError` naming what is missing.
    """
    folder = Path(checkpoint_dir)
    if not (folder / CONFIG_NAME).is_file():
        raise CheckpointError(f"{folder} is not a checkpoint: {CONFIG_NAME} is missing.")
    config = _read_json(folder / CONFIG_NAME)
    problems = []
    auto_map = config.get("auto_map")
    if not isinstance(auto_map, dict) or not auto_map:
        problems.append(
            f"{CONFIG_NAME} has no `auto_map`, so `trust_remote_code=True` cannot find the model code (call "
            "`register_for_auto_class()` on the config and model classes before `save_pretrained`)"
        )
        auto_map = {}
    modules = _auto_map_modules(auto_map)
    for name in PROCESSOR_CONFIG_FILES:
        if (folder / name).is_file():
            modules += _auto_map_modules(_read_json(folder / name).get("auto_map") or {})
    # The checkpoint's pipeline, which `pipeline(model=...)` loads from the file `config.custom_pipelines` names.
    modules += _auto_map_modules({task: entry.get("impl") for task, entry in _custom_pipelines(config).items()})
    for module in dict.fromkeys(modules):
        code_file = folder / (module.replace(".", "/") + ".py")
        try:
            # transformers' own list of the files `trust_remote_code` fetches next to this one.
            needed = [code_file, *map(Path, get_relative_import_files(code_file))]
        except FileNotFoundError as error:  # the file itself or one of its relative imports
            needed = [Path(error.filename)]
        problems += [f"code file {path.relative_to(folder)} is missing" for path in needed if not path.is_file()]

    if (folder / SAFE_WEIGHTS_INDEX_NAME).is_file():
        shards = sorted(set(_read_json(folder / SAFE_WEIGHTS_INDEX_NAME).get("weight_map", {}).values()))
        problems += [f"weight shard {shard} is missing" for shard in shards if not (folder / shard).is_file()]
    elif not (folder / SAFE_WEIGHTS_NAME).is_file():
        problems.append(f"{SAFE_WEIGHTS_NAME} is missing (save with `save_pretrained`, which writes safetensors)")
    if problems:
        raise CheckpointError(f"{folder} is not a complete checkpoint:\n- " + "\n- ".join(dict.fromkeys(problems)))
    return config


def minimum_transformers_version() -> str:
    """The oldest transformers the model code supports: the highest floor on `transformers` among the installed
    distribution's requirements, optional extras excluded."""
    try:
        requirements = [Requirement(line) for line in metadata.requires(DISTRIBUTION_NAME) or []]
    except metadata.PackageNotFoundError:
        return FALLBACK_MINIMUM_TRANSFORMERS_VERSION
    floors = [spec.version for requirement in requirements
              if canonicalize_name(requirement.name) == "transformers"
              and (requirement.marker is None or requirement.marker.evaluate({"extra": ""}))
              for spec in requirement.specifier if spec.operator in (">=", "~=", "==")]
    return max(floors, key=Version) if floors else FALLBACK_MINIMUM_TRANSFORMERS_VERSION


def _fraction(value):
    """The metric as a float in [0, 1]; None for a missing or NaN value."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _check_fractions(results: dict) -> dict:
    """Refuse `results` whose known metrics are not fractions in [0, 1] (percentages, typically)."""
    if not isinstance(results, dict) or set(results) - {"runs", "summary"}:
        raise ValueError("`results` must be a dict with the keys 'runs' and 'summary'.")
    values = [(f"['runs'][{index}]['{split}']['{metric}']", value)
              for index, run in enumerate(results.get("runs", [])) for split in ("validation", "test")
              for metric, value in (run.get(split) or {}).items() if metric in CARD_METRICS]
    for fusion, metrics in (results.get("summary") or {}).items():
        for metric, stats in metrics.items():
            if not isinstance(stats, dict) or "mean" not in stats:
                raise ValueError(f"results['summary']['{fusion}']['{metric}'] must be a dict with 'mean' and 'std'.")
            if metric in CARD_METRICS:
                values.append((f"['summary']['{fusion}']['{metric}']['mean']", stats["mean"]))
    for where, value in values:
        if _fraction(value) is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"results{where} = {value}: metrics must be fractions in [0, 1].")
    return results


def _metric_rows(values: dict) -> list:
    """[(key, name, "70.12" or "70.12 ± 0.85")] of the known metrics in `values` ({metric: fraction} or
    {metric: {"mean", "std"}}), as percentages."""
    rows = []
    for key, (_, name, _) in CARD_METRICS.items():
        if key in values:
            stats = values[key] if isinstance(values[key], dict) else {"mean": values[key]}
            mean, std = _fraction(stats.get("mean")), _fraction(stats.get("std"))
            text = "n/a" if mean is None else f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")
            rows.append((key, name, text))
    return rows


def _is_hub_model_id(name) -> bool:
    return bool(name) and not Path(str(name)).exists() and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", str(name)) is not None


def render_model_card(checkpoint_dir, results: dict = None, training_args: dict = None, dataset_name: str = "MIntRec",
                      dataset_id: str = None, base_model: str = None, repo_id: str = None,
                      license: str = DEFAULT_LICENSE, template_path=MODEL_CARD_TEMPLATE,
                      synthetic: bool = None) -> ModelCard:
    """The model card (README.md) of a DyKen-Hyena checkpoint.

    Args:
        checkpoint_dir: the checkpoint folder; its config.json gives the architecture, the labels and, unless
            `base_model` is given, the text encoder.
        results: the trainer's results, {"runs": [{"fusion", "seed", "validation": {...}, "test": {...}}],
            "summary": {fusion: {metric: {"mean", "std"}}}}, metrics as fractions in [0, 1]. The `model-index`
            holds this checkpoint's test metrics when its run can be told (same fusion, and the seed of
            `training_args`), else the mean over the seeds of its fusion.
        training_args: hyperparameters, shown as YAML; default: `checkpoint_dir/training_args.json` if present.
        dataset_name: "MIntRec" or "MIntRec2.0" (for a synthetic run: the benchmark whose format it copies).
        dataset_id: the dataset's Hub id, if any.
        base_model: Hub id of the text encoder; a local path is only named in the text.
        repo_id: the Hub repository, used in the loading code.
        license: license of the code and weights.
        synthetic: the run trained and evaluated on synthetic data: the card says so at the top and throughout
            and has no `model-index`, so that no score is listed as a benchmark result. None: read from the
            training arguments (`is_synthetic`, else `dataset == "synthetic"`).

    Raises:
        ValueError: `results` is malformed or holds percentages, or `synthetic=False` for a recorded synthetic run.
    """
    folder = Path(checkpoint_dir)
    config = _read_json(folder / CONFIG_NAME) if (folder / CONFIG_NAME).is_file() else {}
    results = _check_fractions(results or {"runs": [], "summary": {}})
    if training_args is None and (folder / "training_args.json").is_file():
        training_args = _read_json(folder / "training_args.json")
    training_args = json.loads(json.dumps(training_args or {}, default=str))  # paths, enums, ... as strings
    recorded = training_args.get("is_synthetic")
    recorded_synthetic = str(training_args.get("dataset")).lower() == "synthetic"
    if isinstance(recorded, bool):  # the trainer's own record wins over the dataset name
        recorded_synthetic = recorded
    if synthetic is None:
        synthetic = recorded_synthetic
    elif not synthetic and recorded_synthetic:
        raise ValueError(
            f"synthetic=False, but the training arguments record a synthetic run (is_synthetic={recorded!r}, "
            f"dataset={training_args.get('dataset')!r}); pass synthetic=True or None."
        )

    text_config = config.get("text_config") or {}
    text_encoder = base_model or text_config.get("_name_or_path") or training_args.get("model_name_or_path")
    fusion = config.get("fusion") or training_args.get("fusion")
    model_name = repo_id.split("/")[-1] if repo_id else folder.resolve().name
    runs, summary = results.get("runs", []), results.get("summary") or {}

    # The model-index: this checkpoint's own run if it can be told apart, else the seed mean of its fusion.
    seed = training_args.get("seed")
    own_runs = [run for run in runs if run.get("fusion") == fusion and seed in (None, run.get("seed"))]
    if len(own_runs) == 1 and own_runs[0].get("test"):
        index_values, index_source = own_runs[0]["test"], f"seed {own_runs[0].get('seed')}, test split"
    elif fusion in summary:
        index_values = {metric: stats["mean"] for metric, stats in summary[fusion].items()}
        seeds = sum(run.get("fusion") == fusion for run in runs) or "several"
        index_source = f"mean over {seeds} seeds, test split"
    else:
        index_values, index_source = {}, None
    # No model-index at all for a synthetic run: the Hub lists every entry as an evaluation result on a dataset.
    eval_results = [
        EvalResult(task_type=PIPELINE_TAG, task_name="Multimodal intent recognition",
                   dataset_type=dataset_id or re.sub(r"[^a-z0-9.]+", "-", dataset_name.lower()),
                   dataset_name=dataset_name, dataset_split="test", metric_type=CARD_METRICS[key][0],
                   metric_name=CARD_METRICS[key][1], metric_args=CARD_METRICS[key][2],
                   metric_value=_fraction(index_values[key]))
        for key in CARD_METRICS
        if not synthetic and _fraction(index_values.get(key)) is not None
    ]
    card_data = ModelCardData(
        language="en", license=license, library_name="transformers", pipeline_tag=PIPELINE_TAG,
        tags=CARD_TAGS + [SYNTHETIC_DATA_TAG] if synthetic else CARD_TAGS,
        datasets=[dataset_id] if dataset_id else None,
        base_model=text_encoder if _is_hub_model_id(text_encoder) else None,
        # Metric ids of hf.co/metrics; FPR@95 has none and stays in the model-index only.
        metrics=sorted({result.metric_type for result in eval_results} - {"fpr95"}) or None,
        model_name=model_name, eval_results=eval_results or None,
    )

    id2label = config.get("id2label") or {}
    architecture = {key: config[key] for key in ARCHITECTURE_KEYS if key in config}
    # The pipeline snippet: the checkpoint's own pipeline task, the extractors its processor makes features with,
    # the label of the out-of-scope answer.
    pipeline_tasks = [task for task, entry in _custom_pipelines(config).items()
                      if (folder / f"{entry['impl'].rsplit('.', 1)[0]}.py").is_file()]
    processor_config = (_read_json(folder / "processor_config.json")
                        if (folder / "processor_config.json").is_file() else {})
    detector = config.get("out_of_scope_detector")
    return ModelCard.from_template(
        card_data, template_path=str(template_path), model_id=repo_id or model_name, fusion=fusion,
        text_encoder=text_encoder, dataset_name=dataset_name, dataset_id=dataset_id, synthetic=synthetic,
        minimum_transformers_version=minimum_transformers_version(),
        labels=[id2label[key] for key in sorted(id2label, key=int)],
        architecture_yaml=yaml.safe_dump(architecture, sort_keys=False).strip() if architecture else None,
        training_args_yaml=yaml.safe_dump(training_args, sort_keys=False).strip() if training_args else None,
        index_source=index_source,
        checkpoint_rows=_metric_rows(index_values),
        summary_rows={name: _metric_rows(metrics) for name, metrics in summary.items()},
        summary_runs={name: sum(run.get("fusion") == name for run in runs) for name in summary},
        has_processor=any((folder / name).is_file() for name in PROCESSOR_CONFIG_FILES),
        pipeline_task=pipeline_tasks[0] if pipeline_tasks else None,
        audio_feature_model=processor_config.get("audio_feature_model"),
        video_feature_model=processor_config.get("video_feature_model"),
        out_of_scope_label=detector.get("label") if isinstance(detector, dict) else None,
        license_name=license,
    )


def push_checkpoint(checkpoint_dir, repo_id: str, token: str = None, private: bool = False, *, card=None,
                    commit_message: str = DEFAULT_COMMIT_MESSAGE):
    """Upload a checkpoint folder to the Hub model repository `repo_id`; return the `CommitInfo`.

    The folder is checked first (`CheckpointError`, before any network call). README.md is then `card` (a
    `ModelCard` or a string); with `card=None` an existing README.md is kept, otherwise a card without results
    is written. The repository is created if needed (`private` only applies then) and the folder uploaded in one
    commit, without `__pycache__`. If the upload fails (`HubUploadError`), README.md is removed or its previous
    content put back, so the folder is exactly as it was and the same call can be run again.
    """
    folder = Path(checkpoint_dir)
    check_checkpoint(folder)
    readme = folder / "README.md"
    previous_readme = readme.read_bytes() if readme.is_file() else None
    if card is None and previous_readme is None:
        card = render_model_card(folder, repo_id=repo_id)
    try:
        if card is not None:
            readme.write_text(str(card), encoding="utf-8")
        return upload_folder(folder, repo_id, token=token, private=private, commit_message=commit_message,
                             ignore_patterns=UPLOAD_IGNORE_PATTERNS)
    except BaseException:  # also Ctrl-C: the folder is put back whatever stopped the upload
        if previous_readme is None:
            readme.unlink(missing_ok=True)
        else:
            readme.write_bytes(previous_readme)
        raise


def _load_mapping(path) -> dict:
    """A JSON or YAML file holding a mapping (results, training arguments)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping, got {type(data).__name__}.")
    return data


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m dyken_hyena.publishing",
        description="Write the model card of a DyKen-Hyena checkpoint and upload the checkpoint to the Hub.",
    )
    parser.add_argument("checkpoint_dir", help="folder written by save_pretrained (config.json, weights, code)")
    parser.add_argument("--hub_model_id", required=True, help="target repository, USER/NAME or ORG/NAME")
    parser.add_argument("--hub_private_repo", action="store_true", help="create the repository as private")
    parser.add_argument("--hub_token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--results", default=None, help="results.json written by the trainer")
    parser.add_argument("--training_args", default=None,
                        help="JSON/YAML hyperparameters (default: CHECKPOINT_DIR/training_args.json)")
    parser.add_argument("--dataset_name", default="MIntRec", help='"MIntRec" or "MIntRec2.0"')
    parser.add_argument("--dataset_id", default=None, help="Hub id of the dataset, if any")
    parser.add_argument("--base_model", default=None, help="Hub id of the text encoder (default: from config.json)")
    parser.add_argument("--synthetic", action=argparse.BooleanOptionalAction, default=None,
                        help="the checkpoint was trained on synthetic data, not the benchmark: the card says so and "
                        "has no model-index (default: from the training arguments)")
    parser.add_argument("--license", default=DEFAULT_LICENSE, help="license of the code and weights (%(default)s)")
    parser.add_argument("--commit_message", default=DEFAULT_COMMIT_MESSAGE)
    parser.add_argument("--dry_run", action="store_true", help="check the folder and write README.md, upload nothing")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_checkpoint(args.checkpoint_dir)
        card = render_model_card(
            args.checkpoint_dir, results=_load_mapping(args.results) if args.results else None,
            training_args=_load_mapping(args.training_args) if args.training_args else None,
            dataset_name=args.dataset_name, dataset_id=args.dataset_id, base_model=args.base_model,
            repo_id=args.hub_model_id, license=args.license, synthetic=args.synthetic,
        )
        if args.dry_run:
            card.save(Path(args.checkpoint_dir) / "README.md")
            print(f"Checkpoint complete; wrote {Path(args.checkpoint_dir) / 'README.md'} (nothing uploaded).")
            return 0
        commit = push_checkpoint(args.checkpoint_dir, args.hub_model_id, token=args.hub_token,
                                 private=args.hub_private_repo, card=card, commit_message=args.commit_message)
    except (CheckpointError, HubUploadError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Uploaded {args.checkpoint_dir} to {commit.repo_url.url} (commit {commit.oid}).")
    print(f'Pin this revision when loading: revision="{commit.oid}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
