"""Tests of hub_publishing: checkpoint check, model card, and uploads against a stand-in Hub.

huggingface_hub sends every request through one shared client of its HTTP backend (httpx2 in 2.x,
httpx in 1.x); the `fake_hub` fixture swaps its transport for a `MockTransport` that answers the
endpoints `create_repo` and `upload_folder` call (repos/create, validate-yaml, preupload, LFS batch +
PUT, commit as NDJSON) and records every request. Nothing leaves the machine. Only these tests touch the
backend; the code under test uses huggingface_hub's public API.
"""

import ast
import base64
import hashlib
import json
import time
from importlib import metadata
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard, constants
from huggingface_hub.utils import _http
from safetensors.torch import save_file

import hub_publishing
from datasets_scripts.convert import HubPushError
from datasets_scripts.convert import push_to_hub as push_dataset_to_hub
from hub_publishing import CheckpointError, HubPublishingError, push_checkpoint, render_model_card, verify_checkpoint

try:  # huggingface_hub 2.x talks through httpx2, 1.x through httpx (same API)
    import httpx2
except ImportError:
    import httpx as httpx2

REPO_ROOT = Path(__file__).resolve().parents[1]

# huggingface_hub's own LFS PUT passes `data=<file>` to httpx2, which warns; not this project's code.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")

REPO_ID = "someone/dyken-hyena-mintrec"
TOKEN = "hf_not_a_real_token"
LFS_STORAGE = "https://lfs-storage.invalid"


# ------------------------------------------------------------------------------------------------
# A stand-in for the Hub
# ------------------------------------------------------------------------------------------------


class FakeHub:
    """Minimal Hub: answers the endpoints of create_repo / upload_folder and records the requests.

    `lfs_suffixes`: files stored through LFS (the real Hub decides by size and type); others are
    sent inline (base64) in the commit. `fail`: {endpoint name: (status, message)} to answer with an
    HTTP error, or {endpoint name: exception} to raise it as the transport would (no response at all).
    """

    def __init__(self, lfs_suffixes=(), fail=None):
        self.lfs_suffixes = tuple(lfs_suffixes)
        self.fail = fail or {}
        self.requests = []  # (endpoint name, httpx2.Request)
        self.created_repos = []  # JSON payloads of repos/create
        self.commits = []  # parsed NDJSON lines of each commit request
        self.lfs_uploads = {}  # oid -> bytes received by the storage PUT

    def endpoint_of(self, request) -> str:
        path = request.url.path
        if request.url.host == "lfs-storage.invalid":
            return "lfs_put"
        for fragment, name in (
            ("/api/repos/create", "create"),
            ("/api/validate-yaml", "validate_yaml"),
            ("/preupload/", "preupload"),
            ("/info/lfs/objects/batch", "lfs_batch"),
            ("/commit/", "commit"),
        ):
            if fragment in path:
                return name
        if request.method == "GET" and path == f"/api/models/{REPO_ID}":
            return "repo_info"
        return "other"

    def handle(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        name = self.endpoint_of(request)
        self.requests.append((name, request))
        if isinstance(self.fail.get(name), Exception):
            raise self.fail[name]
        if name in self.fail:
            status, message = self.fail[name]
            return httpx2.Response(status, headers={"X-Error-Message": message}, json={"error": message})
        if name == "create":
            self.created_repos.append(json.loads(request.content))
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{REPO_ID}"})
        if name == "validate_yaml":
            content = json.loads(request.content)["content"]
            ModelCard(content)  # the real endpoint rejects metadata that does not parse
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if name == "preupload":
            files = json.loads(request.content)["files"]
            modes = [
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if f["path"].endswith(self.lfs_suffixes) else "regular",
                    "shouldIgnore": False,
                }
                for f in files
            ]
            return httpx2.Response(200, json={"files": modes})
        if name == "lfs_batch":
            objects = json.loads(request.content)["objects"]
            actions = [
                {"oid": o["oid"], "size": o["size"], "actions": {"upload": {"href": f"{LFS_STORAGE}/{o['oid']}"}}}
                for o in objects
            ]
            return httpx2.Response(200, json={"transfer": "basic", "objects": actions})
        if name == "lfs_put":
            self.lfs_uploads[request.url.path.strip("/")] = request.content
            return httpx2.Response(200)
        if name == "commit":
            self.commits.append([json.loads(line) for line in request.content.decode().splitlines()])
            return httpx2.Response(
                200,
                json={
                    "commitUrl": f"https://huggingface.co/{REPO_ID}/commit/{'c0ffee' * 6}c0ff",
                    "commitOid": "c0ffee" * 6 + "c0ff",
                },
            )
        return httpx2.Response(
            404, json={"error": f"{request.method} {request.url.path} is not served by the fake Hub"}
        )

    def names(self):
        return [name for name, _ in self.requests]

    def committed_files(self, commit_index=-1) -> dict:
        """{path in repo: ("file", bytes) or ("lfsFile", oid)} of a commit."""
        files = {}
        for line in self.commits[commit_index]:
            if line["key"] == "file":
                files[line["value"]["path"]] = ("file", base64.b64decode(line["value"]["content"]))
            elif line["key"] == "lfsFile":
                files[line["value"]["path"]] = ("lfsFile", line["value"]["oid"])
        return files


@pytest.fixture
def fake_hub(monkeypatch):
    hub = FakeHub()
    # The fake serves whatever endpoint is configured; offline mode would not reach it anyway.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    _http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(hub.handle)))
    yield hub
    _http.set_client_factory(_http.default_client_factory)  # also closes the fake client


# ------------------------------------------------------------------------------------------------
# A fake, complete checkpoint (the real model code is not needed to test publishing)
# ------------------------------------------------------------------------------------------------


LABELS = ["Complain", "Praise", "Apologise"]


@pytest.fixture
def checkpoint(tmp_path):
    folder = tmp_path / "checkpoint"
    folder.mkdir()
    config = {
        "model_type": "dyken",
        "architectures": ["DyKenForSequenceClassification"],
        "auto_map": {
            "AutoConfig": "configuration_dyken.DyKenConfig",
            "AutoModelForSequenceClassification": "modeling_dyken.DyKenForSequenceClassification",
        },
        "fusion": "dyken",
        "alignment": "ctc",
        "short_kernel_size": 3,
        "num_labels": 3,
        "id2label": {str(i): name for i, name in enumerate(LABELS)},
        "label2id": {name: i for i, name in enumerate(LABELS)},
        "text_config": {"_name_or_path": "sentence-transformers/all-MiniLM-L6-v2", "hidden_size": 384},
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "configuration_dyken.py").write_text("class DyKenConfig:\n    model_type = 'dyken'\n")
    (folder / "modeling_dyken.py").write_text(
        "from .configuration_dyken import DyKenConfig\n\n\n"
        "class DyKenForSequenceClassification:\n    config_class = DyKenConfig\n"
    )
    (folder / "processor_config.json").write_text(
        json.dumps({"auto_map": {"AutoProcessor": "processing_dyken.DyKenProcessor"}})
    )
    (folder / "processing_dyken.py").write_text("class DyKenProcessor:\n    pass\n")
    save_file(
        {"classifier.weight": torch.randn(3, 16), "classifier.bias": torch.zeros(3)}, str(folder / "model.safetensors")
    )
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "modeling_dyken.cpython-311.pyc").write_bytes(b"\x00compiled")
    return folder


def file_hashes(folder: Path) -> dict:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


RESULTS = {
    "runs": [
        {
            "fusion": "dyken",
            "seed": 0,
            "validation": {"accuracy": 0.74, "f1_macro": 0.70},
            "test": {
                "accuracy": 0.7265,
                "f1_macro": 0.6864,
                "precision_macro": 0.6908,
                "recall_macro": 0.6928,
                "f1_weighted": 0.7201,
                "precision_weighted": 0.7302,
            },
        },
        {
            "fusion": "dyken",
            "seed": 1,
            "validation": {"accuracy": 0.73},
            "test": {"accuracy": 0.7200, "f1_macro": 0.6800},
        },
        {
            "fusion": "text",
            "seed": 0,
            "validation": {"accuracy": 0.71},
            "test": {"accuracy": 0.7088, "f1_macro": 0.6740},
        },
    ],
    "summary": {
        "dyken": {"accuracy": {"mean": 0.72325, "std": 0.00325}, "f1_macro": {"mean": 0.6832, "std": 0.0032}},
        "text": {"accuracy": {"mean": 0.7088, "std": 0.0}, "f1_macro": {"mean": 0.6740, "std": 0.0}},
    },
}
TRAINING_ARGS = {
    "seed": 0,
    "learning_rate": 2e-5,
    "num_train_epochs": 100,
    "per_device_train_batch_size": 16,
    "fusion": "dyken",
}


# results.json of a job on a synthetic release, as the trainer writes it: per-class F1, the non-verbal
# intents' scores, run bookkeeping, and null for an undefined metric.
SYNTHETIC_RESULTS = {
    "runs": [
        {
            "fusion": "dyken",
            "seed": 0,
            "validation": {"accuracy": 0.6667, "f1_macro": 0.6, "auroc": None},
            "test": {"accuracy": 0.625, "f1_macro": 0.5833, "precision_macro": 0.6111, "recall_macro": 0.625},
            "test_per_class_f1": {"Complain": 0.5, "Praise": 0.25, "Apologise": 1.0},
            "test_nonverbal": {"f1_macro": 0.375, "accuracy": 0.5},
            "num_examples": {"train": 24, "validation": 6, "test": 8},
            "best_epoch": 2,
            "stopped_early": False,
            "completed_steps": 18,
        }
    ],
    "summary": {
        "dyken": {
            "accuracy": {"mean": 0.625, "std": 0.0},
            "f1_macro": {"mean": 0.5833, "std": 0.0},
            "precision_macro": {"mean": 0.6111, "std": 0.0},
            "recall_macro": {"mean": 0.625, "std": 0.0},
            "nonverbal_f1_macro": {"mean": 0.375, "std": 0.0},
            "nonverbal_accuracy": {"mean": 0.5, "std": 0.0},
        }
    },
}
# A repository name without the benchmark's name, so that any "MIntRec" in the metadata comes from the card.
DEMO_REPO_ID = "someone/dyken-hyena-demo"


def _metadata_block(card_text: str) -> str:
    """The YAML between the card's two `---` lines, as the Hub reads it."""
    assert card_text.startswith("---\n")
    return card_text[4 : card_text.index("\n---\n", 4)]


# ------------------------------------------------------------------------------------------------
# verify_checkpoint
# ------------------------------------------------------------------------------------------------


def test_complete_checkpoint_passes(checkpoint):
    assert verify_checkpoint(checkpoint)["fusion"] == "dyken"


def _drop_auto_map(folder):
    config = json.loads((folder / "config.json").read_text())
    del config["auto_map"]
    (folder / "config.json").write_text(json.dumps(config))


def _weights_as_bin(folder):
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"pickle")


@pytest.mark.parametrize(
    "break_checkpoint, expected_message",
    [
        (lambda f: (f / "model.safetensors").unlink(), "model.safetensors is missing"),
        (_weights_as_bin, "found pytorch_model.bin"),
        (lambda f: (f / "model.safetensors").write_bytes(b"not safetensors"), "cannot be read as safetensors"),
        (_drop_auto_map, "has no `auto_map`"),
        (lambda f: (f / "modeling_dyken.py").unlink(), "code file modeling_dyken.py"),
        (lambda f: (f / "configuration_dyken.py").unlink(), "code file configuration_dyken.py"),
        (lambda f: (f / "processing_dyken.py").unlink(), "code file processing_dyken.py"),
        (lambda f: (f / "config.json").unlink(), "config.json is missing"),
        (lambda f: (f / "config.json").write_text("{not json"), "is not valid JSON"),
    ],
    ids=[
        "no-weights",
        "bin-weights",
        "corrupt-weights",
        "no-auto-map",
        "no-modeling",
        "no-configuration",
        "no-processor-code",
        "no-config",
        "bad-config",
    ],
)
def test_incomplete_checkpoint_is_named(checkpoint, break_checkpoint, expected_message):
    break_checkpoint(checkpoint)
    with pytest.raises(CheckpointError, match=expected_message):
        verify_checkpoint(checkpoint)


def test_relative_import_of_the_modeling_file_is_checked(checkpoint):
    # configuration_dyken.py is still referenced by auto_map["AutoConfig"]; a helper imported only by the
    # modeling file must be found through its relative import.
    modeling = checkpoint / "modeling_dyken.py"
    modeling.write_text("from .hyena_ops import long_conv\n" + modeling.read_text())
    with pytest.raises(CheckpointError, match="code file hyena_ops.py"):
        verify_checkpoint(checkpoint)
    (checkpoint / "hyena_ops.py").write_text("def long_conv():\n    pass\n")
    verify_checkpoint(checkpoint)


# ------------------------------------------------------------------------------------------------
# render_model_card
# ------------------------------------------------------------------------------------------------


def _metrics_by_name(card: ModelCard) -> dict:
    return {result.metric_name: result for result in card.data.eval_results}


def test_model_card_metadata_parses_back(checkpoint):
    card = render_model_card(
        checkpoint,
        RESULTS,
        TRAINING_ARGS,
        dataset_name="MIntRec",
        dataset_id="someone/mintrec-features",
        repo_id=REPO_ID,
    )
    parsed = ModelCard(str(card))  # what the Hub will read from README.md
    data = parsed.data
    assert data.library_name == "transformers"
    assert data.pipeline_tag == "text-classification"
    assert data.license == "apache-2.0"
    assert set(hub_publishing.CARD_TAGS) <= set(data.tags)
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"  # from config.json text_config
    assert data.datasets == ["someone/mintrec-features"]
    assert data.model_name == "dyken-hyena-mintrec"
    # model-index: this checkpoint's run (fusion dyken, seed 0), test split, as fractions in [0, 1] like
    # the Hub's evaluation results and the transformers Trainer's cards; the card says so.
    metrics = _metrics_by_name(parsed)
    assert {name: result.metric_value for name, result in metrics.items()} == {
        "Accuracy": 0.7265,
        "Macro F1": 0.6864,
        "Macro precision": 0.6908,
        "Macro recall": 0.6928,
        "Weighted F1": 0.7201,
        "Weighted precision": 0.7302,
    }
    assert "metrics as **fractions in [0, 1]**" in parsed.text
    assert "The tables show **percentages**" in parsed.text and "| Accuracy | 72.65 |" in parsed.text
    assert metrics["Macro F1"].metric_type == "f1" and metrics["Macro F1"].metric_args == {"average": "macro"}
    for result in parsed.data.eval_results:
        assert result.task_type == "text-classification"
        assert result.dataset_type == "someone/mintrec-features"
        assert result.dataset_name == "MIntRec"
        assert result.dataset_split == "test"
    # Body: loading with a pinned revision, results, hyperparameters, citations, data licence.
    text = parsed.text
    assert f'repo_id = "{REPO_ID}"' in text and "trust_remote_code=True, revision=revision" in text
    assert "AutoProcessor.from_pretrained" in text  # the checkpoint ships processor files
    assert "| Accuracy | 72.32 ± 0.33 |" in text  # seed summary of fusion dyken
    assert "**fusion = `text`** (1 run)" in text
    assert "learning_rate: 2.0e-05" in text
    for key in ("wang2025dykenhyena", "zhang2022mintrec", "zhang2024mintrec2", "2509.09940", "CC BY-NC-SA 4.0"):
        assert key in text
    assert "wav2vec 2.0" in text and "Faster R-CNN" in text
    assert ", ".join(LABELS) in text


def test_model_card_falls_back_to_seed_mean_and_skips_nan(checkpoint):
    # No seed in the training arguments: the run cannot be identified -> mean over the dyken seeds.
    results = json.loads(json.dumps(RESULTS))
    results["summary"]["dyken"]["auroc"] = {"mean": float("nan"), "std": float("nan")}
    card = ModelCard(str(render_model_card(checkpoint, results, {"fusion": "dyken"}, dataset_name="MIntRec2.0")))
    metrics = _metrics_by_name(card)
    assert metrics["Accuracy"].metric_value == pytest.approx(0.72325)  # the mean over seeds, not rounded
    assert "AUROC (out-of-scope vs in-scope)" not in metrics  # NaN is not a value for the model-index
    assert "| AUROC (out-of-scope vs in-scope) | n/a |" in card.text
    assert "mean over 2 seeds" in card.text
    assert "WavLM" in card.text and "Swin" in card.text  # MIntRec2.0 feature extractors
    assert card.data.eval_results[0].dataset_type == "mintrec2.0"


def test_model_card_without_results(checkpoint):
    card = ModelCard(str(render_model_card(checkpoint)))
    assert card.data.eval_results is None or card.data.eval_results == []
    assert "No evaluation results were provided" in card.text
    assert "The training arguments were not recorded" in card.text


def test_model_card_rejects_percentages_and_local_base_model(checkpoint, tmp_path):
    bad = {"runs": [{"fusion": "dyken", "seed": 0, "test": {"accuracy": 72.65}}], "summary": {}}
    with pytest.raises(
        ValueError, match=r"\['runs'\]\[0\]\['test'\]\['accuracy'\] = 72.65: metrics must be fractions"
    ):
        render_model_card(checkpoint, bad)
    # A local folder is not a Hub id: it stays out of the `base_model` metadata.
    card = ModelCard(str(render_model_card(checkpoint, base_model=str(tmp_path))))
    assert card.data.base_model is None


def test_synthetic_run_card_claims_no_benchmark_result(checkpoint):
    # The trainer's call for a job on a synthetic release (no Hub dataset), with the synthetic flag.
    card = render_model_card(
        checkpoint,
        results=json.loads(json.dumps(SYNTHETIC_RESULTS)),
        training_args=TRAINING_ARGS,
        dataset_name="MIntRec",
        dataset_id=None,
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        repo_id=DEMO_REPO_ID,
        synthetic=True,
    )
    parsed = ModelCard(str(card))
    # Metadata: nothing the Hub would index as a MIntRec result, and a tag that says synthetic.
    metadata_yaml = _metadata_block(str(card))
    assert "model-index" not in metadata_yaml and "mintrec" not in metadata_yaml.lower()
    assert parsed.data.eval_results is None and parsed.data.datasets is None and parsed.data.metrics is None
    assert hub_publishing.SYNTHETIC_DATA_TAG in parsed.data.tags
    assert yaml.safe_load(metadata_yaml)["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    # Body: the notice at the top, synthetic training data, no MIntRec data licence or limitations.
    text = parsed.text
    notice = "> **Demonstration checkpoint trained on synthetic data: this is not a MIntRec model.**"
    assert notice in text and text.index(notice) < text.index("## Model details")
    assert "- **Training data:** **synthetic** data in the MIntRec format" in text
    assert "the synthetic training data holds no third-party material" in text
    benchmark_only = (
        "CC BY-NC-SA",  # the MIntRec data licence
        "Superstore",  # the limitations of the benchmark's TV-series clips
        "about 85% accuracy on MIntRec",
        "Extract features with the benchmark's released tools",
        "cite the method and the benchmark",
    )
    for passage in benchmark_only:
        assert passage not in text, passage
    assert "Trained on generated data only" in text
    assert "This card\ntherefore has no `model-index` metadata" in text
    # The scores are still reported, labelled as synthetic.
    assert "| Metric | Synthetic (MIntRec format) |" in text and "| Metric | MIntRec |" not in text
    assert "| Accuracy | 62.50 |" in text and "| Macro F1 | 58.33 ± 0.00 |" in text


@pytest.mark.parametrize(
    "recorded",
    [{"dataset": "synthetic"}, {"dataset": "mintrec", "data_dir": "releases/generated", "is_synthetic": True}],
    ids=["dataset-synthetic", "is_synthetic"],
)
def test_synthetic_run_is_recognised_from_its_training_arguments(checkpoint, recorded):
    # training_args.json as the trainer saves it with the best checkpoint; the card is rendered without the flag.
    (checkpoint / "training_args.json").write_text(json.dumps({**TRAINING_ARGS, **recorded}))
    card = render_model_card(checkpoint, SYNTHETIC_RESULTS, dataset_name="MIntRec", repo_id=DEMO_REPO_ID)
    card = ModelCard(str(card))
    assert card.data.eval_results is None
    assert "Demonstration checkpoint trained on synthetic data" in card.text
    with pytest.raises(ValueError, match="synthetic=False, but the training arguments record a synthetic run"):
        render_model_card(checkpoint, SYNTHETIC_RESULTS, synthetic=False)


def test_cli_synthetic_flag(checkpoint, tmp_path):
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(SYNTHETIC_RESULTS))
    arguments = [str(checkpoint), "--hub_model_id", DEMO_REPO_ID, "--results", str(results_path), "--dry_run"]
    assert hub_publishing.main(arguments + ["--synthetic"]) == 0
    card = ModelCard.load(checkpoint / "README.md")
    assert card.data.eval_results is None and hub_publishing.SYNTHETIC_DATA_TAG in card.data.tags
    # Without the flag (and no synthetic run recorded in the training arguments) it is a benchmark card.
    assert hub_publishing.main(arguments) == 0
    assert _metrics_by_name(ModelCard.load(checkpoint / "README.md"))["Accuracy"].metric_value == pytest.approx(0.625)


def test_card_names_the_declared_minimum_transformers_version(checkpoint, monkeypatch):
    declared = ["torch>=2.4", "transformers<7,>=5.3.1", 'transformers>=9.0; extra == "test"', "datasets>=4.0"]
    monkeypatch.setattr(metadata, "requires", lambda name: declared if name == "dyken-hyena" else None)
    text = ModelCard(str(render_model_card(checkpoint))).text
    assert "- **Requires:** `transformers>=5.3.1`" in text
    assert "loading needs `trust_remote_code=True` and\n`transformers>=5.3.1`" in text

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "requires", not_installed)
    fallback = hub_publishing.FALLBACK_MINIMUM_TRANSFORMERS_VERSION
    assert f"- **Requires:** `transformers>={fallback}`" in ModelCard(str(render_model_card(checkpoint))).text


def test_fallback_minimum_transformers_version_is_the_declared_floor():
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement

    dependencies = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    floors = [
        spec.version
        for requirement in map(Requirement, dependencies)
        if requirement.name == "transformers"
        for spec in requirement.specifier
        if spec.operator == ">="
    ]
    assert floors == [hub_publishing.FALLBACK_MINIMUM_TRANSFORMERS_VERSION]


# ------------------------------------------------------------------------------------------------
# push_checkpoint against the stand-in Hub
# ------------------------------------------------------------------------------------------------


def test_push_uploads_the_complete_checkpoint(fake_hub, checkpoint):
    card = render_model_card(checkpoint, RESULTS, TRAINING_ARGS, repo_id=REPO_ID)
    commit = push_checkpoint(
        checkpoint, REPO_ID, token=TOKEN, private=True, commit_message="Add seed-0 checkpoint", card=card
    )

    assert commit.oid == "c0ffee" * 6 + "c0ff"
    # Repository creation: private, authenticated with the given token.
    assert fake_hub.created_repos == [
        {"name": "dyken-hyena-mintrec", "organization": "someone", "visibility": "private", "type": "model"}
    ]
    create_request = next(request for name, request in fake_hub.requests if name == "create")
    assert create_request.headers["authorization"] == f"Bearer {TOKEN}"
    assert fake_hub.names().index("create") < fake_hub.names().index("commit")

    # One commit with every file of the checkpoint, byte for byte, and nothing from __pycache__.
    assert len(fake_hub.commits) == 1
    header = fake_hub.commits[0][0]
    assert header["key"] == "header" and header["value"]["summary"] == "Add seed-0 checkpoint"
    committed = fake_hub.committed_files()
    expected_files = {
        "README.md",
        "config.json",
        "model.safetensors",
        "configuration_dyken.py",
        "modeling_dyken.py",
        "processor_config.json",
        "processing_dyken.py",
    }
    assert set(committed) == expected_files
    for path in expected_files:
        assert committed[path] == ("file", (checkpoint / path).read_bytes()), path

    # The README now in the folder is the card that was uploaded; its metadata parses back.
    uploaded_card = ModelCard(committed["README.md"][1].decode())
    assert _metrics_by_name(uploaded_card)["Accuracy"].metric_value == pytest.approx(0.7265)
    assert (checkpoint / "README.md").read_text() == str(card)


def test_push_sends_large_files_through_lfs(fake_hub, checkpoint, monkeypatch):
    # Without hf_xet (or with it disabled), large files go through the LFS batch API and a PUT to storage.
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    fake_hub.lfs_suffixes = (".safetensors",)
    push_checkpoint(checkpoint, REPO_ID, token=TOKEN)

    weights = (checkpoint / "model.safetensors").read_bytes()
    oid = hashlib.sha256(weights).hexdigest()
    batch_request = next(request for name, request in fake_hub.requests if name == "lfs_batch")
    assert json.loads(batch_request.content)["objects"] == [{"oid": oid, "size": len(weights)}]
    assert fake_hub.lfs_uploads == {oid: weights}
    committed = fake_hub.committed_files()
    assert committed["model.safetensors"] == ("lfsFile", oid)
    assert committed["config.json"] == ("file", (checkpoint / "config.json").read_bytes())
    assert fake_hub.created_repos[0]["visibility"] == "public"
    # No card given and no README.md in the folder: a card without results was rendered and uploaded.
    assert "No evaluation results were provided" in committed["README.md"][1].decode()


@pytest.mark.parametrize("had_readme", [False, True], ids=["new-readme", "existing-readme"])
def test_failed_commit_leaves_the_checkpoint_intact(fake_hub, checkpoint, monkeypatch, had_readme):
    if had_readme:
        (checkpoint / "README.md").write_text("# my own notes\n")
    before = file_hashes(checkpoint)
    fake_hub.fail["commit"] = (500, "Internal Error - We're working hard to fix this as soon as possible!")
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # huggingface_hub retries 5xx with backoff

    card = render_model_card(checkpoint, RESULTS, TRAINING_ARGS, repo_id=REPO_ID)
    with pytest.raises(HubPublishingError) as raised:
        push_checkpoint(checkpoint, REPO_ID, token=TOKEN, card=card)

    error = raised.value
    assert error.step == "upload" and error.status_code == 500 and error.repo_id == REPO_ID
    assert "HTTP 500 during commit" in str(error) and "working hard" in str(error)
    assert "local checkpoint is unchanged" in str(error)
    assert "commit" in fake_hub.names()
    assert file_hashes(checkpoint) == before  # same files, same bytes (README restored or removed)


def test_failed_repo_creation_is_reported_before_any_upload(fake_hub, checkpoint):
    # 403 on create: with exist_ok=True huggingface_hub checks whether the repo exists (404 here).
    fake_hub.fail["create"] = (403, 'You don\'t have the rights to create a model under the namespace "someone"')
    before = file_hashes(checkpoint)
    with pytest.raises(HubPublishingError) as raised:
        push_checkpoint(checkpoint, REPO_ID, token=TOKEN)
    error = raised.value
    assert error.step == "create_repo" and error.status_code == 403
    assert (
        "Creating the Hub repository someone/dyken-hyena-mintrec failed: HTTP 403 during repository creation"
        in str(error)
    )
    assert "rights to create a model" in str(error)
    assert "preupload" not in fake_hub.names() and "commit" not in fake_hub.names()
    assert file_hashes(checkpoint) == before


def test_failed_lfs_transfer_names_the_http_status(fake_hub, checkpoint, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    fake_hub.lfs_suffixes = (".safetensors",)
    fake_hub.fail["lfs_put"] = (403, "Request has expired")
    before = file_hashes(checkpoint)
    with pytest.raises(HubPublishingError, match="HTTP 403 during file transfer") as raised:
        push_checkpoint(checkpoint, REPO_ID, token=TOKEN)
    assert raised.value.status_code == 403
    assert "commit" not in fake_hub.names()
    assert file_hashes(checkpoint) == before


@pytest.mark.parametrize("failure", ["no-connection", "http-403"])
def test_both_uploaders_describe_a_hub_failure_alike(fake_hub, checkpoint, tmp_path, monkeypatch, failure):
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    if failure == "no-connection":
        # What the HTTP backend raises when the Hub's name does not resolve; huggingface_hub re-raises it as is.
        fake_hub.fail["create"] = httpx2.ConnectError("[Errno -3] Temporary failure in name resolution")
        expected = [
            f"the Hub could not be reached ({httpx2.ConnectError.__module__}.ConnectError: "
            "[Errno -3] Temporary failure in name resolution)"
        ]
        expected_status, expected_cause = None, httpx2.ConnectError
    else:
        fake_hub.fail["commit"] = (403, "no write access to this repository")
        expected = ["HTTP 403 during commit (POST https://", "/commit/main): no write access to this repository"]
        expected_status, expected_cause = 403, hub_publishing.HfHubHTTPError
    converted = tmp_path / "converted"
    (converted / "data").mkdir(parents=True)
    (converted / "README.md").write_text("---\nlicense: cc-by-nc-sa-4.0\n---\n# MIntRec features\n")
    (converted / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 stand-in shard PAR1")

    with pytest.raises(HubPublishingError) as model_upload:
        push_checkpoint(checkpoint, REPO_ID, token=TOKEN)
    with pytest.raises(HubPushError) as dataset_upload:
        push_dataset_to_hub(converted, "someone/mintrec-features", token=TOKEN)

    assert model_upload.value.status_code == expected_status
    for error in (model_upload.value, dataset_upload.value):
        for fragment in expected:
            assert fragment in str(error), (type(error).__name__, str(error))
        assert isinstance(error.__cause__, expected_cause)  # the original error stays chained


def test_incomplete_checkpoint_sends_no_request(fake_hub, checkpoint):
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors is missing"):
        push_checkpoint(checkpoint, REPO_ID, token=TOKEN)
    assert fake_hub.requests == []


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def test_cli_pushes_with_results(fake_hub, checkpoint, tmp_path, capsys):
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(RESULTS))
    (checkpoint / "training_args.json").write_text(json.dumps(TRAINING_ARGS))
    exit_code = hub_publishing.main(
        [
            str(checkpoint),
            "--hub_model_id",
            REPO_ID,
            "--hub_private_repo",
            "--hub_token",
            TOKEN,
            "--results",
            str(results_path),
        ]
    )
    assert exit_code == 0, capsys.readouterr().err
    assert fake_hub.created_repos[0]["visibility"] == "private"
    readme = ModelCard(fake_hub.committed_files()["README.md"][1].decode())
    assert _metrics_by_name(readme)["Macro F1"].metric_value == pytest.approx(0.6864)  # seed 0 from training_args.json
    assert "training_args.json" in fake_hub.committed_files()
    assert "revision=" in capsys.readouterr().out


def test_cli_dry_run_and_failure(fake_hub, checkpoint, capsys):
    assert hub_publishing.main([str(checkpoint), "--hub_model_id", REPO_ID, "--dry_run"]) == 0
    assert fake_hub.requests == []
    assert ModelCard.load(checkpoint / "README.md").data.library_name == "transformers"

    (checkpoint / "modeling_dyken.py").unlink()
    assert hub_publishing.main([str(checkpoint), "--hub_model_id", REPO_ID]) == 1
    assert (
        "code file modeling_dyken.py (needed by auto_map or a relative import) is missing" in capsys.readouterr().err
    )
    assert fake_hub.requests == []


# ------------------------------------------------------------------------------------------------
# Dependencies
# ------------------------------------------------------------------------------------------------


def test_hub_code_imports_no_http_backend():
    # huggingface_hub's HTTP backend (httpx2 in 2.x, httpx in 1.x) is its own business and not a dependency
    # of this project: the uploaders talk to the Hub through huggingface_hub's public API only.
    for relative_path in ("hub_publishing.py", "datasets_scripts/convert.py"):
        tree = ast.parse((REPO_ROOT / relative_path).read_text(encoding="utf-8"))
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
        }
        assert not imported & {"httpx", "httpx2"}, f"{relative_path} imports {sorted(imported & {'httpx', 'httpx2'})}"
