# Copyright 2025 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""Model card and Hugging Face Hub upload for a trained DyKen-Hyena checkpoint.

    python -m hub_publishing CHECKPOINT_DIR --hub_model_id USER/NAME [--hub_private_repo]
        [--hub_token TOKEN] [--results results.json] [--training_args args.json] [--dry_run]

- `verify_checkpoint` checks that a folder can be loaded with `trust_remote_code=True` from the Hub:
  config.json with an `auto_map`, model.safetensors (or a complete sharded index), and every code
  file the `auto_map` entries (and their relative imports) need.
- `render_model_card` fills model_cards/model_card_template.md (Jinja2, through
  `huggingface_hub.ModelCard.from_template`): YAML metadata (with a `model-index` of test metrics for a
  run on a benchmark; none for a run on a synthetic release), intended use and limitations, the
  minimum transformers version, loading code, results, training configuration, citations.
- `push_checkpoint` creates the repository (`exist_ok=True`), writes README.md into the folder and
  uploads the folder in one call to `upload_folder`. If anything fails, the folder is put back
  exactly as it was and a `HubPublishingError` says which step failed and the HTTP status.

Metric values are fractions in [0, 1] everywhere in this project. The card's `model-index` keeps them
as fractions, the scale of the Hub's evaluation results (`huggingface_hub.EvalResult`) and of the model
cards the transformers `Trainer` writes (`transformers.modelcard.TrainingSummary`); its tables show
percentages (value x 100, two decimals).
"""

import argparse
import json
import math
import re
import sys
from importlib import metadata
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import HfHubHTTPError
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version
from safetensors import safe_open
from transformers.dynamic_module_utils import get_relative_imports

MODEL_CARD_TEMPLATE = Path(__file__).resolve().parent / "model_cards" / "model_card_template.md"

# Files the lead's `save_pretrained` writes; the card and the code check rely on them.
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX_FILE = "model.safetensors.index.json"
# Processor / tokenizer configs that may carry their own `auto_map` (custom processor code).
PROCESSOR_CONFIG_FILES = ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json")
# The classes a user loads from the card: both must be resolvable through `auto_map`.
REQUIRED_AUTO_CLASSES = ("AutoConfig", "AutoModelForSequenceClassification")
# Never uploaded from a checkpoint folder.
UPLOAD_IGNORE_PATTERNS = ["**/__pycache__/**", "__pycache__/**", "*.pyc", ".ipynb_checkpoints/**"]

CARD_TAGS = ["multimodal", "intent-recognition", "hyena", "dynamic-convolution", "custom_code"]
# Added to the card of a run on a synthetic release, so the Hub's tag filter shows what it was trained on.
SYNTHETIC_DATA_TAG = "synthetic-data"
DEFAULT_LICENSE = "apache-2.0"
DATA_LICENSE = "CC BY-NC-SA 4.0"

# The card states the oldest transformers the remote code supports: the `transformers` floor this
# distribution declares (pyproject.toml). The fallback is that same floor, for code run from a source
# tree where the distribution is not installed; keep the two equal (tests/test_hub.py checks it).
DISTRIBUTION_NAME = "dyken-hyena"
FALLBACK_MINIMUM_TRANSFORMERS_VERSION = "5.20"

# Metric key -> (model-index metric type, pretty name, sklearn-style args or None). Types are Hub
# metric ids; `name` tells apart metrics that share a type (macro vs weighted F1, ...).
CLOSED_SET_CARD_METRICS = {
    "accuracy": ("accuracy", "Accuracy", None),
    "f1_macro": ("f1", "Macro F1", {"average": "macro"}),
    "precision_macro": ("precision", "Macro precision", {"average": "macro"}),
    "recall_macro": ("recall", "Macro recall", {"average": "macro"}),
    "f1_weighted": ("f1", "Weighted F1", {"average": "weighted"}),
    "precision_weighted": ("precision", "Weighted precision", {"average": "weighted"}),
}
OPEN_SET_CARD_METRICS = {
    "f1_is": ("f1", "F1-IS (known classes)", {"average": "macro"}),
    "f1_oos": ("f1", "F1-OOS (out-of-scope class)", None),
    "open_accuracy": ("accuracy", "Open-set accuracy (K+1 classes)", None),
    "open_f1_macro": ("f1", "Open-set macro F1 (K+1 classes)", {"average": "macro"}),
    "auroc": ("roc_auc", "AUROC (out-of-scope vs in-scope)", None),
    "fpr95": ("fpr95", "FPR@95TPR (lower is better)", None),
}
CARD_METRICS = {**CLOSED_SET_CARD_METRICS, **OPEN_SET_CARD_METRICS}

# Pre-extracted features each benchmark was released with; a model only works on the same kind.
FEATURE_EXTRACTORS = {
    "MIntRec": (
        "wav2vec 2.0 (base) hidden states, 768-d, 16 kHz audio",
        "Faster R-CNN (ResNet-50) RoI features of the speaker's key frames, 256-d",
    ),
    "MIntRec2.0": (
        "WavLM hidden states, 768-d",
        "Swin Transformer RoI features of the speaker, 256-d",
    ),
}


class CheckpointError(ValueError):
    """The folder is not a complete checkpoint that can be loaded from the Hub."""


class HubPublishingError(RuntimeError):
    """A Hub call failed. `step` is "create_repo" or "upload"; `status_code` is the HTTP status, or None
    when the Hub could not be reached at all."""

    def __init__(self, message: str, *, step: str, status_code=None, repo_id=None):
        super().__init__(message)
        self.step = step
        self.status_code = status_code
        self.repo_id = repo_id


# ------------------------------------------------------------------------------------------------
# Checkpoint check
# ------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CheckpointError(f"{path} is not valid JSON ({error}).") from None


def _auto_map_modules(auto_map: dict) -> list:
    """Local module names an `auto_map` points to. Entries are "module.Class", a list of those
    (tokenizers: [slow, fast], possibly None) or "other/repo--module.Class" (code in another repo,
    nothing needed locally)."""
    modules = []
    for references in auto_map.values():
        references = references if isinstance(references, (list, tuple)) else [references]
        modules += [
            reference.rsplit(".", 1)[0]
            for reference in references
            if isinstance(reference, str) and "--" not in reference and "." in reference
        ]
    return modules


def _missing_code_files(folder: Path, module_names) -> list:
    """Module files (and, recursively, their relative imports) missing from `folder`."""
    missing, seen = [], set()
    to_check = [name.replace(".", "/") + ".py" for name in module_names]
    while to_check:
        relative_path = to_check.pop()
        if relative_path in seen:
            continue
        seen.add(relative_path)
        path = folder / relative_path
        if not path.is_file():
            missing.append(relative_path)
            continue
        # transformers' own parser: what `trust_remote_code` will try to download next to the file.
        to_check.extend(imported.replace(".", "/") + ".py" for imported in get_relative_imports(path))
    return missing


def _check_weights(folder: Path) -> list:
    problems = []
    weights, index = folder / WEIGHTS_FILE, folder / WEIGHTS_INDEX_FILE
    if weights.is_file():
        try:
            with safe_open(str(weights), framework="numpy") as handle:  # reads the header only
                if not list(handle.keys()):
                    problems.append(f"{WEIGHTS_FILE} holds no tensors")
        except Exception as error:  # safetensors raises its own SafetensorError / OSError
            problems.append(f"{WEIGHTS_FILE} cannot be read as safetensors ({error})")
    elif index.is_file():
        shards = sorted(set(_read_json(index).get("weight_map", {}).values()))
        if not shards:
            problems.append(f"{WEIGHTS_INDEX_FILE} has an empty weight_map")
        problems += [
            f"shard {shard} listed in {WEIGHTS_INDEX_FILE} is missing"
            for shard in shards
            if not (folder / shard).is_file()
        ]
    else:
        found = sorted(path.name for path in folder.glob("*.bin")) + sorted(path.name for path in folder.glob("*.pt"))
        hint = (
            f" (found {', '.join(found)}: save with `save_pretrained(..., safe_serialization=True)`)" if found else ""
        )
        problems.append(f"{WEIGHTS_FILE} is missing{hint}")
    return problems


def verify_checkpoint(checkpoint_dir) -> dict:
    """Check that `checkpoint_dir` is a complete, Hub-loadable checkpoint; return its config.json as a dict.

    Raises `CheckpointError` listing every problem found: no config.json, no `auto_map` (or one without
    AutoConfig / AutoModelForSequenceClassification), missing weights, missing code files.
    """
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        raise CheckpointError(f"Checkpoint folder {folder} does not exist.")
    config_path = folder / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{folder} is not a checkpoint: {CONFIG_FILE} is missing.")
    config = _read_json(config_path)

    problems = []
    auto_map = config.get("auto_map")
    if not isinstance(auto_map, dict) or not auto_map:
        problems.append(
            f"{config_path} has no `auto_map`, so `trust_remote_code=True` cannot find the model code "
            "(call `register_for_auto_class()` on the config and model classes before `save_pretrained`)"
        )
        auto_map = {}
    problems += [
        f"{config_path}: auto_map has no {auto_class} entry"
        for auto_class in REQUIRED_AUTO_CLASSES
        if auto_map and auto_class not in auto_map
    ]
    module_names = _auto_map_modules(auto_map)
    for processor_file in PROCESSOR_CONFIG_FILES:
        if (folder / processor_file).is_file():
            module_names += _auto_map_modules(_read_json(folder / processor_file).get("auto_map") or {})
    problems += [
        f"code file {name} (needed by auto_map or a relative import) is missing"
        for name in _missing_code_files(folder, module_names)
    ]
    problems += _check_weights(folder)
    if problems:
        raise CheckpointError(f"{folder} is not a complete checkpoint:\n- " + "\n- ".join(problems))
    return config


# ------------------------------------------------------------------------------------------------
# Model card
# ------------------------------------------------------------------------------------------------


def _fraction(value):
    """The metric as a float in [0, 1] (the `model-index` scale); None for a missing or NaN value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def _percent(value):
    """Fraction in [0, 1] -> percentage with 2 decimals (the tables' scale); None for a missing or NaN value."""
    fraction = _fraction(value)
    return None if fraction is None else round(100.0 * fraction, 2)


def minimum_transformers_version() -> str:
    """The oldest transformers version the model code supports, as the card states it.

    The highest floor (`>=`, `~=` or `==`) on `transformers` among the installed dyken-hyena
    distribution's requirements (optional extras excluded); `FALLBACK_MINIMUM_TRANSFORMERS_VERSION` when
    the distribution is not installed or declares no floor.
    """
    try:
        requirements = metadata.requires(DISTRIBUTION_NAME) or []
    except metadata.PackageNotFoundError:
        return FALLBACK_MINIMUM_TRANSFORMERS_VERSION
    floors = []
    for line in requirements:
        requirement = Requirement(line)
        if canonicalize_name(requirement.name) != "transformers":
            continue
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # needed only by an optional extra (or on another platform)
        floors += [spec.version for spec in requirement.specifier if spec.operator in (">=", "~=", "==")]
    return max(floors, key=Version) if floors else FALLBACK_MINIMUM_TRANSFORMERS_VERSION


def _trained_on_synthetic_data(training_args: dict) -> bool:
    """Whether the recorded training arguments say the run used a synthetic release: `is_synthetic`
    when recorded, else the trainer's `dataset` "synthetic"."""
    if isinstance(training_args.get("is_synthetic"), bool):
        return training_args["is_synthetic"]
    return str(training_args.get("dataset", "")).lower() == "synthetic"


def _plain(value):
    """JSON/YAML-safe copy of training arguments (paths, enums, ... become strings)."""
    return json.loads(json.dumps(value, default=str))


def _validate_results(results: dict) -> dict:
    if not isinstance(results, dict):
        raise ValueError(f"`results` must be a dict with 'runs' and 'summary', got {type(results).__name__}.")
    unknown = [key for key in results if key not in ("runs", "summary")]
    if unknown:
        raise ValueError(f"`results` has unexpected keys {unknown}; expected 'runs' and 'summary'.")
    for index, run in enumerate(results.get("runs", [])):
        for split in ("validation", "test"):
            for metric, value in (run.get(split) or {}).items():
                if metric in CARD_METRICS and value is not None and not (0.0 <= value <= 1.0 or math.isnan(value)):
                    raise ValueError(
                        f"results['runs'][{index}]['{split}']['{metric}'] = {value}: "
                        "metrics must be fractions in [0, 1]."
                    )
    for fusion, metrics in (results.get("summary") or {}).items():
        for metric, stats in metrics.items():
            if not isinstance(stats, dict) or "mean" not in stats:
                raise ValueError(f"results['summary']['{fusion}']['{metric}'] must be a dict with 'mean' and 'std'.")
            mean = stats["mean"]
            if metric in CARD_METRICS and mean is not None and not (0.0 <= mean <= 1.0 or math.isnan(mean)):
                raise ValueError(
                    f"results['summary']['{fusion}']['{metric}']['mean'] = {mean}: "
                    "metrics must be fractions in [0, 1]."
                )
    return results


def _checkpoint_run(results: dict, fusion, seed):
    """The run that produced this checkpoint (same fusion and seed), or None if it cannot be told."""
    runs = [run for run in results.get("runs", []) if run.get("fusion") == fusion]
    if seed is not None:
        runs = [run for run in runs if run.get("seed") == seed]
    return runs[0] if len(runs) == 1 else None


def _metric_rows(values: dict, stds: dict = None) -> list:
    """[(key, pretty name, "70.12" or "70.12 ± 0.85")] for the known metrics present in `values`."""
    rows = []
    for key, (_, pretty_name, _) in CARD_METRICS.items():
        if key not in values:
            continue
        value = _percent(values[key])
        text = "n/a" if value is None else f"{value:.2f}"
        if stds is not None and value is not None and _percent(stds.get(key)) is not None:
            text += f" ± {_percent(stds[key]):.2f}"
        rows.append((key, pretty_name, text))
    return rows


def _is_hub_model_id(name) -> bool:
    return bool(name) and not Path(str(name)).exists() and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", str(name)) is not None


def render_model_card(
    checkpoint_dir,
    results: dict = None,
    training_args: dict = None,
    dataset_name: str = "MIntRec",
    dataset_id: str = None,
    base_model: str = None,
    repo_id: str = None,
    license: str = DEFAULT_LICENSE,
    template_path=MODEL_CARD_TEMPLATE,
    synthetic: bool = None,
) -> ModelCard:
    """Model card (README.md) for a DyKen-Hyena checkpoint.

    Args:
        checkpoint_dir: the checkpoint folder; its config.json gives the architecture, labels and, if
            `base_model` is not given, the text encoder (`text_config._name_or_path`).
        results: the trainer's results, {"runs": [{"fusion", "seed", "validation": {...}, "test": {...}}],
            "summary": {fusion: {metric: {"mean", "std"}}}}, metrics as fractions in [0, 1]. The
            `model-index` holds this checkpoint's own test metrics when its run can be identified (same
            fusion and seed as `training_args["seed"]`), else the mean over seeds of its fusion, as
            fractions in [0, 1] (the tables show percentages).
        training_args: hyperparameters, dumped as YAML into the card; defaults to
            `checkpoint_dir/training_args.json` when that file exists.
        dataset_name: pretty dataset name, "MIntRec" or "MIntRec2.0" (for a synthetic run: the benchmark
            whose format and labels the synthetic release copies).
        dataset_id: the dataset's Hub id, if any (metadata `datasets:` and model-index `dataset.type`).
        base_model: Hub id of the text encoder (metadata `base_model:`); local paths are not Hub ids and
            are only mentioned in the text.
        repo_id: the Hub repository, used in the loading snippet.
        license: license of the code and weights (metadata `license:`).
        synthetic: whether the run trained and evaluated on a synthetic release rather than the benchmark.
            Its card says so at the top and throughout, carries no `model-index` and no benchmark data
            licence or limitations. None: taken from the training arguments (`is_synthetic` if
            recorded, else `dataset == "synthetic"`).

    Raises:
        ValueError: `results` is malformed or not in [0, 1], or `synthetic=False` while the training
            arguments record a synthetic run.
    """
    folder = Path(checkpoint_dir)
    config = _read_json(folder / CONFIG_FILE) if (folder / CONFIG_FILE).is_file() else {}
    results = _validate_results(results or {"runs": [], "summary": {}})
    if training_args is None and (folder / "training_args.json").is_file():
        training_args = _read_json(folder / "training_args.json")
    training_args = _plain(training_args or {})
    recorded_synthetic = _trained_on_synthetic_data(training_args)
    if synthetic is None:
        synthetic = recorded_synthetic
    elif not synthetic and recorded_synthetic:
        # A synthetic run's card rendered as a benchmark card would publish synthetic scores as benchmark results.
        raise ValueError(
            f"synthetic=False, but the training arguments record a synthetic run (is_synthetic="
            f"{training_args.get('is_synthetic')!r}, dataset={training_args.get('dataset')!r}); pass synthetic=True "
            "or None, or training arguments of the benchmark run."
        )

    text_config = config.get("text_config") or {}
    text_encoder = base_model or text_config.get("_name_or_path") or training_args.get("text_model")
    fusion = config.get("fusion") or training_args.get("fusion")
    seed = training_args.get("seed")
    model_name = repo_id.split("/")[-1] if repo_id else folder.resolve().name

    # Results: this checkpoint's run if identifiable, else the seed mean of its fusion.
    summary = results.get("summary") or {}
    this_run = _checkpoint_run(results, fusion, seed)
    if this_run is not None and this_run.get("test"):
        index_values, index_source = this_run["test"], f"seed {this_run.get('seed')}, test split"
    elif fusion in summary:
        index_values = {metric: stats["mean"] for metric, stats in summary[fusion].items()}
        runs_of_fusion = [run for run in results.get("runs", []) if run.get("fusion") == fusion]
        index_source = f"mean over {len(runs_of_fusion) or 'several'} seeds, test split"
    else:
        index_values, index_source = {}, None

    # A synthetic run gets no model-index at all. The Hub shows every model-index entry as an evaluation
    # result and leaderboards collect them by dataset; an entry naming a made-up "synthetic" dataset would
    # still be listed as a score (and one mentioning MIntRec could be matched to the benchmark). With no
    # entry, nothing indexes the synthetic scores; they stay in the card's text, labelled synthetic.
    dataset_type = dataset_id or re.sub(r"[^a-z0-9.]+", "-", dataset_name.lower())
    eval_results = [
        EvalResult(
            task_type="text-classification",
            task_name="Multimodal intent recognition",
            dataset_type=dataset_type,
            dataset_name=dataset_name,
            dataset_split="test",
            metric_type=CARD_METRICS[key][0],
            metric_name=CARD_METRICS[key][1],
            metric_args=CARD_METRICS[key][2],
            metric_value=_fraction(index_values[key]),
        )
        for key in CARD_METRICS
        if not synthetic and key in index_values and _fraction(index_values[key]) is not None
    ]
    card_data = ModelCardData(
        language="en",
        license=license,
        library_name="transformers",
        pipeline_tag="text-classification",
        tags=CARD_TAGS + [SYNTHETIC_DATA_TAG] if synthetic else CARD_TAGS,
        datasets=[dataset_id] if dataset_id else None,
        base_model=text_encoder if _is_hub_model_id(text_encoder) else None,
        # Metric ids listed on hf.co/metrics (FPR@95 has none; it stays in the model-index only).
        metrics=sorted({result.metric_type for result in eval_results} - {"fpr95"}) or None,
        model_name=model_name,
        eval_results=eval_results or None,
    )

    id2label = config.get("id2label") or {}
    labels = [id2label[key] for key in sorted(id2label, key=int)] if id2label else []
    architecture = {
        key: config[key]
        for key in (
            "fusion",
            "alignment",
            "short_kernel_size",
            "use_dynamic_short_conv",
            "use_long_conv",
            "use_gating",
            "audio_feature_dim",
            "video_feature_dim",
            "max_text_length",
            "max_audio_length",
            "max_video_length",
            "num_labels",
        )
        if key in config
    }
    audio_features, video_features = FEATURE_EXTRACTORS.get(dataset_name, FEATURE_EXTRACTORS["MIntRec"])
    has_processor = any((folder / name).is_file() for name in PROCESSOR_CONFIG_FILES)
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path),
        model_id=repo_id or model_name,
        fusion=fusion,
        text_encoder=text_encoder,
        dataset_name=dataset_name,
        dataset_id=dataset_id,
        synthetic=synthetic,
        results_column=f"Synthetic ({dataset_name} format)" if synthetic else dataset_name,
        minimum_transformers_version=minimum_transformers_version(),
        labels=labels,
        audio_features=audio_features,
        video_features=video_features,
        architecture_yaml=yaml.safe_dump(architecture, sort_keys=False).strip() if architecture else None,
        training_args_yaml=yaml.safe_dump(training_args, sort_keys=False).strip() if training_args else None,
        index_source=index_source,
        checkpoint_rows=_metric_rows(index_values),
        summary_rows={
            fusion_name: _metric_rows(
                {metric: stats.get("mean") for metric, stats in metrics.items()},
                {metric: stats.get("std") for metric, stats in metrics.items()},
            )
            for fusion_name, metrics in summary.items()
        },
        summary_runs={
            fusion_name: sum(run.get("fusion") == fusion_name for run in results.get("runs", []))
            for fusion_name in summary
        },
        has_processor=has_processor,
        license_name=license,
        data_license=DATA_LICENSE,
    )


# ------------------------------------------------------------------------------------------------
# Upload
# ------------------------------------------------------------------------------------------------


# URL fragment of a Hub endpoint -> the upload stage it belongs to (named in error messages).
HUB_STAGES = (
    ("/api/repos/create", "repository creation"),
    ("/api/validate-yaml", "README metadata validation"),
    ("/preupload/", "preupload (asking how to store each file)"),
    ("lfs/objects/batch", "LFS batch (asking where to send large files)"),
    ("/xet-", "xet storage"),
    ("/commit/", "commit"),
)


def _is_connection_failure(error: Exception) -> bool:
    """Whether no HTTP response came back: no network, DNS, TLS, timeout, proxy, offline mode.

    After its retries huggingface_hub re-raises its HTTP backend's own exception (see
    `huggingface_hub.utils._http`), which is no `HfHubHTTPError`; the backend is httpx in
    huggingface_hub 1.x and httpx2 in 2.x. Both derive every failure to send a request or to read the
    response from a class named `TransportError`, so the class name is matched instead of importing
    a backend that may not be installed. `OfflineModeIsEnabled` is a `ConnectionError`."""
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    return any(cls.__name__ == "TransportError" for cls in type(error).__mro__)


def describe_hub_error(error: Exception) -> tuple:
    """(HTTP status or None, one-line description) of an exception raised by a huggingface_hub call.

    huggingface_hub wraps some HTTP errors (a failed LFS transfer raises RuntimeError from the HTTP
    error), so the first `HfHubHTTPError` (`RepositoryNotFoundError`, `BadRequestError`, ... are
    subclasses) in the `__cause__` chain is the one described, with the stage of the upload its URL
    belongs to. Any other exception is described by its qualified type and message."""
    http_error = error
    while http_error is not None and not isinstance(http_error, HfHubHTTPError):
        http_error = http_error.__cause__
    if http_error is not None and http_error.response is not None:
        status = http_error.response.status_code
        request = http_error.response.request
        url = str(request.url)
        stage = next((name for fragment, name in HUB_STAGES if fragment in url), "file transfer")
        server_message = f": {http_error.server_message}" if http_error.server_message else ""
        return status, f"HTTP {status} during {stage} ({request.method} {url}){server_message}"
    error_type = type(error)
    qualified_type = error_type.__qualname__
    if error_type.__module__ != "builtins":  # e.g. httpx2.ConnectError: which library raised it
        qualified_type = f"{error_type.__module__}.{qualified_type}"
    if _is_connection_failure(error):
        return None, f"the Hub could not be reached ({qualified_type}: {error})"
    return None, f"{qualified_type}: {error}"


def push_checkpoint(
    checkpoint_dir,
    repo_id: str,
    token: str = None,
    private: bool = False,
    commit_message: str = "Upload DyKen-Hyena checkpoint",
    card=None,
):
    """Upload a checkpoint folder to the Hub model repository `repo_id`; return the `CommitInfo`.

    1. `verify_checkpoint` (raises `CheckpointError` before any network call);
    2. `create_repo(repo_id, private=private, exist_ok=True)` (`private` only applies to a new repo);
    3. README.md: `card` (a `ModelCard` or a string) is written into the folder; with `card=None` an
       existing README.md is kept, otherwise a card without results is rendered;
    4. `upload_folder` (one commit; caches and __pycache__ are skipped).

    A failed Hub call raises `HubPublishingError` (`step` "create_repo" or "upload", `status_code`);
    the folder is then restored exactly as it was (a README.md written by step 3 is removed or its
    previous content put back), so a retry starts from the same checkpoint.
    """
    folder = Path(checkpoint_dir)
    verify_checkpoint(folder)
    api = HfApi(token=token)

    try:
        repo_url = api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
    # Every failure of the call is caught here, the one boundary to the Hub: `HfHubHTTPError` and its
    # subclasses for an HTTP error, the HTTP backend's own exception when the Hub cannot be reached (see
    # `describe_hub_error`), OSError / ValueError for local problems. The original stays chained.
    except Exception as error:
        status, description = describe_hub_error(error)
        raise HubPublishingError(
            f"Creating the Hub repository {repo_id} failed: {description}",
            step="create_repo",
            status_code=status,
            repo_id=repo_id,
        ) from error

    readme = folder / "README.md"
    previous_readme = readme.read_bytes() if readme.is_file() else None
    if card is None and previous_readme is None:
        card = render_model_card(folder, repo_id=repo_id)
    if card is not None:
        readme.write_text(str(card), encoding="utf-8")
    try:
        return api.upload_folder(
            repo_id=repo_url.repo_id,
            repo_type="model",
            folder_path=folder,
            commit_message=commit_message,
            ignore_patterns=list(UPLOAD_IGNORE_PATTERNS),
        )
    except Exception as error:  # the same failures as for create_repo above
        # Put the folder back as it was before this call.
        if previous_readme is None:
            readme.unlink(missing_ok=True)
        else:
            readme.write_bytes(previous_readme)
        status, description = describe_hub_error(error)
        raise HubPublishingError(
            f"Uploading {folder} to {repo_id} failed: {description}. The repository exists; the local "
            "checkpoint is unchanged, so the same command can be run again.",
            step="upload",
            status_code=status,
            repo_id=repo_id,
        ) from error


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def _load_mapping(path) -> dict:
    """A JSON or YAML file holding a dict (results, training arguments)."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping, got {type(data).__name__}.")
    return data


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Write the model card of a DyKen-Hyena checkpoint and push it to the Hub."
    )
    parser.add_argument(
        "checkpoint_dir", help="folder written by save_pretrained (config.json, model.safetensors, code)"
    )
    parser.add_argument("--hub_model_id", required=True, help="target repository, USER/NAME or ORG/NAME")
    parser.add_argument("--hub_private_repo", action="store_true", help="create the repository as private")
    parser.add_argument("--hub_token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    parser.add_argument("--results", default=None, help="results.json written by the trainer")
    parser.add_argument(
        "--training_args", default=None, help="JSON/YAML hyperparameters (default: CHECKPOINT_DIR/training_args.json)"
    )
    parser.add_argument("--dataset_name", default="MIntRec", help='"MIntRec" or "MIntRec2.0"')
    parser.add_argument("--dataset_id", default=None, help="Hub id of the dataset, if any")
    parser.add_argument("--base_model", default=None, help="Hub id of the text encoder (default: from config.json)")
    parser.add_argument(
        "--synthetic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the checkpoint was trained on a synthetic release, not the benchmark: the card says so and has no "
        "model-index (default: from the training arguments: is_synthetic, else dataset 'synthetic')",
    )
    parser.add_argument(
        "--license", default=DEFAULT_LICENSE, help=f"license of the code and weights (default {DEFAULT_LICENSE})"
    )
    parser.add_argument("--commit_message", default="Upload DyKen-Hyena checkpoint")
    parser.add_argument("--dry_run", action="store_true", help="check the folder and write README.md, upload nothing")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        verify_checkpoint(args.checkpoint_dir)
        card = render_model_card(
            args.checkpoint_dir,
            results=_load_mapping(args.results) if args.results else None,
            training_args=_load_mapping(args.training_args) if args.training_args else None,
            dataset_name=args.dataset_name,
            dataset_id=args.dataset_id,
            base_model=args.base_model,
            repo_id=args.hub_model_id,
            license=args.license,
            synthetic=args.synthetic,
        )
        if args.dry_run:
            card.save(Path(args.checkpoint_dir) / "README.md")
            print(f"Checkpoint OK; wrote {Path(args.checkpoint_dir) / 'README.md'} (nothing uploaded).")
            return 0
        commit = push_checkpoint(
            args.checkpoint_dir,
            args.hub_model_id,
            token=args.hub_token,
            private=args.hub_private_repo,
            commit_message=args.commit_message,
            card=card,
        )
    except (CheckpointError, HubPublishingError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Uploaded {args.checkpoint_dir} to {commit.repo_url.url} (commit {commit.oid}).")
    print(f'Pin this revision when loading: revision="{commit.oid}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
