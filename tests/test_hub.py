"""Publishing: the checkpoint check, the model card, and uploads of checkpoints and converted datasets.

Uploads go to the stand-in Hub of conftest.py (`fake_hub`); nothing leaves the machine. The checkpoints are
written by the real model's `save_pretrained` (tiny sizes), so the check is tested against what training saves.
"""

import hashlib
import json
import re
import shutil
import socket
import time
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from huggingface_hub import DatasetCard, ModelCard, constants
from transformers import AutoTokenizer

from configuration_dyken import DyKenConfig
from datasets_scripts.__main__ import main as datasets_main
from datasets_scripts.synthetic import write_synthetic_release
from dyken_hyena import publishing
from dyken_hyena.hub import HubUploadError, upload_folder
from dyken_hyena.publishing import CheckpointError, check_checkpoint, push_checkpoint, render_model_card
from modeling_dyken import DyKenForSequenceClassification, resolve_text_model_path
from processing_dyken import DyKenProcessor


# huggingface_hub's own LFS PUT passes `data=<file>` to its HTTP backend, which warns; not this project's code.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_ID = "someone/dyken-hyena-mintrec"
# Without the benchmark's name, so that any "MIntRec" in a card's metadata comes from the card.
DEMO_REPO_ID = "someone/dyken-hyena-demo"
DATASET_REPO_ID = "someone/mintrec"
TOKEN = "hf_not_a_real_token"
LABELS = ["Complain", "Praise", "Apologise"]


# ------------------------------------------------------------------------------------------------
# A tiny real checkpoint
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    """What training saves: model (config.json with its auto_map, weights, code) and processor (tokenizer)."""
    folder = tmp_path_factory.mktemp("saved") / "checkpoint"
    text_config = dict(hidden_size=48, num_attention_heads=4, intermediate_size=96, num_hidden_layers=2,
                       vocab_size=120, _name_or_path="sentence-transformers/all-MiniLM-L6-v2")  # fmt: skip
    config = DyKenConfig(
        text_config=text_config, fusion="dyken", num_labels=3, id2label=dict(enumerate(LABELS)),
        label2id={name: i for i, name in enumerate(LABELS)}, max_text_length=16, max_audio_length=40,
        max_video_length=24, kernel_heads=4, cross_attention_hidden_size=32, cross_attention_heads=4,
        kernel_generator_hidden_size=32,
    )  # fmt: skip
    DyKenForSequenceClassification(config).save_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(resolve_text_model_path("all-MiniLM-L6-v2"))
    DyKenProcessor.for_benchmark("MIntRec", tokenizer).save_pretrained(folder)
    return folder


@pytest.fixture
def checkpoint(saved_checkpoint, tmp_path):
    """A private copy of the saved checkpoint, with a Python cache that must never be uploaded."""
    folder = shutil.copytree(saved_checkpoint, tmp_path / "checkpoint")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "modeling_dyken.cpython-311.pyc").write_bytes(b"\x00compiled")
    return folder


def file_hashes(folder: Path) -> dict:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def uploadable_files(folder: Path) -> set:
    return {name for name in file_hashes(folder) if "__pycache__" not in name}


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
        {"fusion": "dyken", "seed": 1, "validation": {"accuracy": 0.73}, "test": {"accuracy": 0.72, "f1_macro": 0.68}},
        {"fusion": "text", "seed": 0, "validation": {"accuracy": 0.71}, "test": {"accuracy": 0.7088, "f1_macro": 0.67}},
    ],
    "summary": {
        "dyken": {"accuracy": {"mean": 0.72325, "std": 0.00325}, "f1_macro": {"mean": 0.6832, "std": 0.0032}},
        "text": {"accuracy": {"mean": 0.7088, "std": 0.0}, "f1_macro": {"mean": 0.6740, "std": 0.0}},
    },
}
TRAINING_ARGS = {"seed": 0, "learning_rate": 2e-5, "num_train_epochs": 100, "per_device_train_batch_size": 16,
                 "fusion": "dyken"}  # fmt: skip
# results.json of a job on a synthetic release, as the trainer writes it: per-class F1, the non-verbal intents'
# scores, run bookkeeping, and null for an undefined metric.
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


def _metadata_block(card_text: str) -> str:
    """The YAML between the card's two `---` lines, as the Hub reads it."""
    assert card_text.startswith("---\n")
    return card_text[4 : card_text.index("\n---\n", 4)]


def _metrics_by_name(card: ModelCard) -> dict:
    return {result.metric_name: result for result in card.data.eval_results}


# ------------------------------------------------------------------------------------------------
# check_checkpoint
# ------------------------------------------------------------------------------------------------


def test_what_save_pretrained_writes_passes_the_check(checkpoint):
    assert check_checkpoint(checkpoint)["id2label"] == {"0": "Complain", "1": "Praise", "2": "Apologise"}


def _drop_auto_map(folder):
    config = json.loads((folder / "config.json").read_text())
    del config["auto_map"]
    (folder / "config.json").write_text(json.dumps(config))


def _shard_the_weights(folder):
    (folder / "model.safetensors").rename(folder / "model-00001-of-00002.safetensors")
    weight_map = {"classifier.weight": "model-00001-of-00002.safetensors",
                  "classifier.bias": "model-00002-of-00002.safetensors"}  # fmt: skip
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


@pytest.mark.parametrize(
    "break_checkpoint, expected_message",
    [
        (lambda f: (f / "model.safetensors").unlink(), "model.safetensors is missing"),
        (_shard_the_weights, "weight shard model-00002-of-00002.safetensors is missing"),
        (_drop_auto_map, "config.json has no `auto_map`"),
        (lambda f: (f / "modeling_dyken.py").unlink(), "code file modeling_dyken.py is missing"),
        (lambda f: (f / "configuration_dyken.py").unlink(), "code file configuration_dyken.py is missing"),
        (lambda f: (f / "processing_dyken.py").unlink(), "code file processing_dyken.py is missing"),
        (lambda f: (f / "config.json").unlink(), "config.json is missing"),
        (lambda f: (f / "config.json").write_text("{not json"), "config.json is not valid JSON"),
    ],
    ids=["no-weights", "missing-shard", "no-auto-map", "no-modeling", "no-configuration", "no-processor-code",
         "no-config", "bad-config"],
)  # fmt: skip
def test_incomplete_checkpoint_names_what_is_missing(checkpoint, break_checkpoint, expected_message):
    break_checkpoint(checkpoint)
    with pytest.raises(CheckpointError, match=re.escape(expected_message)):
        check_checkpoint(checkpoint)


def test_relative_import_of_the_modeling_file_is_checked(checkpoint):
    # A helper imported only by the modeling file is found through its relative import.
    modeling = checkpoint / "modeling_dyken.py"
    modeling.write_text("from .hyena_ops import long_conv\n" + modeling.read_text())
    with pytest.raises(CheckpointError, match=r"code file hyena_ops\.py is missing"):
        check_checkpoint(checkpoint)
    (checkpoint / "hyena_ops.py").write_text("def long_conv():\n    pass\n")
    check_checkpoint(checkpoint)


# ------------------------------------------------------------------------------------------------
# render_model_card
# ------------------------------------------------------------------------------------------------


def test_model_card_metadata_parses_back(checkpoint):
    card = render_model_card(
        checkpoint, RESULTS, TRAINING_ARGS, dataset_name="MIntRec", dataset_id="someone/mintrec-features",
        repo_id=REPO_ID,
    )  # fmt: skip
    parsed = ModelCard(str(card))  # what the Hub will read from README.md
    data = parsed.data
    assert (data.library_name, data.pipeline_tag, data.license) == ("transformers", "video-classification", "apache-2.0")
    assert "custom_code" in data.tags  # the Hub's mark of a model that needs trust_remote_code
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"  # from config.json text_config
    assert data.datasets == ["someone/mintrec-features"]
    assert data.model_name == "dyken-hyena-mintrec"
    # model-index: this checkpoint's run (fusion dyken, seed 0), test split, as fractions in [0, 1] like the
    # Hub's evaluation results and the transformers Trainer's cards; the tables show percentages.
    metrics = _metrics_by_name(parsed)
    assert {name: result.metric_value for name, result in metrics.items()} == {
        "Accuracy": 0.7265,
        "Macro F1": 0.6864,
        "Macro precision": 0.6908,
        "Macro recall": 0.6928,
        "Weighted F1": 0.7201,
        "Weighted precision": 0.7302,
    }
    assert "| Accuracy | 72.65 |" in parsed.text
    assert metrics["Macro F1"].metric_type == "f1" and metrics["Macro F1"].metric_args == {"average": "macro"}
    for result in parsed.data.eval_results:
        assert (result.task_type, result.dataset_split) == ("video-classification", "test")
        assert (result.dataset_type, result.dataset_name) == ("someone/mintrec-features", "MIntRec")
    # Body: loading with a pinned revision, results, hyperparameters, citations, data licence.
    text = parsed.text
    assert f'repo_id = "{REPO_ID}"' in text and "trust_remote_code=True, revision=revision" in text
    assert "AutoProcessor.from_pretrained" in text  # the checkpoint has processor files
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
    assert not card.data.eval_results
    assert "No evaluation results were provided" in card.text
    assert "The training arguments were not recorded" in card.text


def test_model_card_rejects_percentages_and_local_base_model(checkpoint, tmp_path):
    bad = {"runs": [{"fusion": "dyken", "seed": 0, "test": {"accuracy": 72.65}}], "summary": {}}
    with pytest.raises(ValueError, match=r"\['runs'\]\[0\]\['test'\]\['accuracy'\] = 72.65: metrics must be fractions"):
        render_model_card(checkpoint, bad)
    bad_summary = {"runs": [], "summary": {"dyken": {"f1_macro": {"mean": 68.3, "std": 0.3}}}}
    with pytest.raises(ValueError, match=r"\['summary'\]\['dyken'\]\['f1_macro'\]\['mean'\] = 68.3"):
        render_model_card(checkpoint, bad_summary)
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
    assert "synthetic-data" in parsed.data.tags
    assert yaml.safe_load(metadata_yaml)["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    # Body: the notice at the top, synthetic training data, no MIntRec data licence or limitations.
    text = parsed.text
    notice = "> **Demonstration checkpoint trained on synthetic data: this is not a MIntRec model.**"
    assert notice in text and text.index(notice) < text.index("## Model details")
    assert "- **Training data:** **synthetic** data in the MIntRec format" in text
    benchmark_only = (
        "CC BY-NC-SA",  # the MIntRec data licence
        "Superstore",  # the limitations of the benchmark's TV-series clips
        "about 85% accuracy on MIntRec",
        "Extract features with the benchmark's released tools",
        "cite the method and the benchmark",
    )
    for passage in benchmark_only:
        assert passage not in text, passage
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
    card = ModelCard(str(render_model_card(checkpoint, SYNTHETIC_RESULTS, repo_id=DEMO_REPO_ID)))
    assert card.data.eval_results is None
    assert "Demonstration checkpoint trained on synthetic data" in card.text
    with pytest.raises(ValueError, match="synthetic=False, but the training arguments record a synthetic run"):
        render_model_card(checkpoint, SYNTHETIC_RESULTS, synthetic=False)


def test_card_names_the_declared_minimum_transformers_version(checkpoint, monkeypatch):
    declared = ["torch>=2.4", "transformers<7,>=5.3.1", 'transformers>=9.0; extra == "test"', "datasets>=4.0"]
    monkeypatch.setattr(metadata, "requires", lambda name: declared if name == "dyken-hyena" else None)
    text = ModelCard(str(render_model_card(checkpoint))).text
    assert "- **Requires:** `transformers>=5.3.1`" in text
    assert "loading needs `trust_remote_code=True` and\n`transformers>=5.3.1`" in text

    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "requires", not_installed)
    fallback = publishing.FALLBACK_MINIMUM_TRANSFORMERS_VERSION
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
    assert floors == [publishing.FALLBACK_MINIMUM_TRANSFORMERS_VERSION]


# ------------------------------------------------------------------------------------------------
# push_checkpoint against the stand-in Hub
# ------------------------------------------------------------------------------------------------


def test_push_uploads_the_complete_checkpoint(fake_hub, checkpoint, tmp_path):
    card = render_model_card(checkpoint, RESULTS, TRAINING_ARGS, repo_id=REPO_ID)
    commit = push_checkpoint(checkpoint, REPO_ID, token=TOKEN, private=True, card=card, commit_message="Add seed 0")

    assert commit.oid == "c0ffee" * 6 + "c0ff" and commit.repo_url.repo_id == REPO_ID
    # The repository is created first, private, with the given token.
    assert fake_hub.created_repos == [
        {"name": "dyken-hyena-mintrec", "organization": "someone", "visibility": "private", "type": "model"}
    ]
    create_request = next(request for name, request in fake_hub.requests if name == "create")
    assert create_request.headers["authorization"] == f"Bearer {TOKEN}"
    assert fake_hub.names().index("create") < fake_hub.names().index("commit")
    # One commit with every file of the checkpoint, byte for byte, and nothing from __pycache__.
    assert len(fake_hub.commits) == 1 and fake_hub.commits[0][0]["value"]["summary"] == "Add seed 0"
    committed = fake_hub.committed_files()
    assert set(committed) == uploadable_files(checkpoint) and "README.md" in committed
    for path in committed:
        assert committed[path] == ("file", (checkpoint / path).read_bytes()), path
        assert str(tmp_path) not in committed[path][1].decode(errors="replace"), f"{path} names a local path"
    # The README in the folder is the card that was uploaded; its metadata parses back.
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
    # No card given and no README.md in the folder: a card without results was written and uploaded.
    assert "No evaluation results were provided" in committed["README.md"][1].decode()


@pytest.mark.parametrize("had_readme", [False, True], ids=["new-readme", "existing-readme"])
def test_failed_commit_leaves_the_checkpoint_intact(fake_hub, checkpoint, monkeypatch, had_readme):
    if had_readme:
        (checkpoint / "README.md").write_text("# my own notes\n")
    before = file_hashes(checkpoint)
    fake_hub.fail["commit"] = (500, "Internal Error - We're working hard to fix this as soon as possible!")
    monkeypatch.setattr(time, "sleep", lambda seconds: None)  # huggingface_hub retries 5xx with backoff

    card = render_model_card(checkpoint, RESULTS, TRAINING_ARGS, repo_id=REPO_ID)
    with pytest.raises(HubUploadError) as raised:
        push_checkpoint(checkpoint, REPO_ID, token=TOKEN, card=card)

    error = raised.value
    assert (error.step, error.status_code, error.repo_id) == ("upload", 500, REPO_ID)
    assert "HTTP 500 (Internal Error - We're working hard" in str(error)
    assert "wait a little and run the same upload again" in str(error)
    assert "commit" in fake_hub.names()
    assert file_hashes(checkpoint) == before  # same files, same bytes: README.md restored or removed


def test_failed_lfs_transfer_names_the_http_status(fake_hub, checkpoint, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    fake_hub.lfs_suffixes = (".safetensors",)
    fake_hub.fail["lfs_put"] = (403, "Request has expired")
    before = file_hashes(checkpoint)
    with pytest.raises(HubUploadError, match=r"HTTP 403 \(Request has expired\)") as raised:
        push_checkpoint(checkpoint, REPO_ID, token=TOKEN)
    assert (raised.value.step, raised.value.status_code) == ("upload", 403)
    assert "commit" not in fake_hub.names()
    assert file_hashes(checkpoint) == before


def test_incomplete_checkpoint_sends_no_request(fake_hub, checkpoint):
    (checkpoint / "model.safetensors").unlink()
    before = file_hashes(checkpoint)
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing"):
        push_checkpoint(checkpoint, REPO_ID, token=TOKEN)
    assert fake_hub.requests == []
    assert file_hashes(checkpoint) == before


# ------------------------------------------------------------------------------------------------
# upload_folder: one uploader, one way to report a failure, for models and datasets alike
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def converted_dataset(tmp_path):
    """A folder laid out as `python -m datasets_scripts convert` writes it (stand-in shard bytes)."""
    folder = tmp_path / "converted"
    (folder / "data").mkdir(parents=True)
    (folder / "README.md").write_text("---\nlicense: cc-by-nc-sa-4.0\n---\n# MIntRec features\n")
    (folder / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 stand-in shard PAR1")
    return folder


@pytest.fixture(params=["model", "dataset"])
def upload_target(request, checkpoint, converted_dataset):
    """(folder, repo_id, repo_type) of each kind of upload."""
    if request.param == "model":
        return checkpoint, REPO_ID, "model"
    return converted_dataset, DATASET_REPO_ID, "dataset"


def test_refused_repository_creation_asks_for_write_access(fake_hub, upload_target):
    folder, repo_id, repo_type = upload_target
    # A 403 on create: with exist_ok=True huggingface_hub first checks whether the repo exists (404 here).
    fake_hub.fail["create"] = (403, 'You don\'t have the rights to create a repository under the namespace "someone"')
    before = file_hashes(folder)
    with pytest.raises(HubUploadError) as raised:
        upload_folder(folder, repo_id, repo_type=repo_type, token=TOKEN)
    error = raised.value
    assert (error.step, error.status_code, error.repo_id, error.repo_type) == ("create_repo", 403, repo_id, repo_type)
    assert str(error).startswith(f"Creating the Hub {repo_type} repository {repo_id} failed: HTTP 403 (You don't have")
    assert "use a token with write permission for that user or organisation" in str(error)
    assert "preupload" not in fake_hub.names() and "commit" not in fake_hub.names()
    assert file_hashes(folder) == before


@pytest.mark.parametrize("status, advice", [(401, "hf auth login"), (404, "that 'someone' exists")])
def test_refused_commit_names_the_status_and_what_to_do(fake_hub, upload_target, status, advice):
    folder, repo_id, repo_type = upload_target
    fake_hub.fail["commit"] = (status, "refused by the stand-in Hub")
    with pytest.raises(HubUploadError) as raised:
        upload_folder(folder, repo_id, repo_type=repo_type, token=TOKEN)
    error = raised.value
    assert (error.step, error.status_code) == ("upload", status)
    expected = f"to the Hub {repo_type} repository {repo_id} failed: HTTP {status} (refused by the stand-in Hub)"
    assert expected in str(error)
    assert advice in str(error) and "the same upload can be run again" in str(error)
    assert error.__cause__ is not None  # the original error stays chained


def test_unreachable_hub_is_reported_without_a_status(upload_target, monkeypatch):
    folder, repo_id, repo_type = upload_target
    # A real refused connection: a local port nobody listens on.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    with pytest.raises(HubUploadError) as raised:
        upload_folder(folder, repo_id, repo_type=repo_type, token=TOKEN)
    error = raised.value
    assert (error.step, error.status_code) == ("create_repo", None)
    assert "failed: the Hub could not be reached (ConnectError: " in str(error)
    assert "Check the network connection" in str(error)


def test_bad_repository_id_or_folder_sends_no_request(fake_hub, checkpoint, tmp_path):
    with pytest.raises(HubUploadError, match="Repository ids look like USER/NAME") as raised:
        upload_folder(checkpoint, "not a repository id", token=TOKEN)
    assert raised.value.step == "create_repo"
    with pytest.raises(NotADirectoryError, match="no-such-folder is not a folder"):
        upload_folder(tmp_path / "no-such-folder", REPO_ID, token=TOKEN)
    assert fake_hub.requests == []


# ------------------------------------------------------------------------------------------------
# Command lines: python -m dyken_hyena.publishing, python -m datasets_scripts convert --push_to_hub
# ------------------------------------------------------------------------------------------------


def test_cli_pushes_with_results(fake_hub, checkpoint, tmp_path, capsys):
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(RESULTS))
    (checkpoint / "training_args.json").write_text(json.dumps(TRAINING_ARGS))
    arguments = [str(checkpoint), "--hub_model_id", REPO_ID, "--hub_private_repo", "--hub_token", TOKEN,
                 "--results", str(results_path)]  # fmt: skip
    assert publishing.main(arguments) == 0, capsys.readouterr().err
    assert fake_hub.created_repos[0]["visibility"] == "private"
    committed = fake_hub.committed_files()
    readme = ModelCard(committed["README.md"][1].decode())
    assert _metrics_by_name(readme)["Macro F1"].metric_value == pytest.approx(0.6864)  # seed 0 from training_args.json
    assert "training_args.json" in committed
    assert 'revision="c0ffee' in capsys.readouterr().out


def test_cli_synthetic_flag(checkpoint, tmp_path):
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps(SYNTHETIC_RESULTS))
    arguments = [str(checkpoint), "--hub_model_id", DEMO_REPO_ID, "--results", str(results_path), "--dry_run"]
    assert publishing.main(arguments + ["--synthetic"]) == 0
    card = ModelCard.load(checkpoint / "README.md")
    assert card.data.eval_results is None and "synthetic-data" in card.data.tags
    # Without the flag (and no synthetic run recorded in the training arguments) it is a benchmark card.
    assert publishing.main(arguments) == 0
    assert _metrics_by_name(ModelCard.load(checkpoint / "README.md"))["Accuracy"].metric_value == pytest.approx(0.625)


def test_cli_dry_run_and_failures(fake_hub, checkpoint, capsys, monkeypatch):
    assert publishing.main([str(checkpoint), "--hub_model_id", REPO_ID, "--dry_run"]) == 0
    assert fake_hub.requests == []
    assert ModelCard.load(checkpoint / "README.md").data.library_name == "transformers"

    fake_hub.fail["commit"] = (403, "no write access to this repository")
    assert publishing.main([str(checkpoint), "--hub_model_id", REPO_ID, "--hub_token", TOKEN]) == 1
    assert "error: Uploading the files of" in capsys.readouterr().err

    (checkpoint / "modeling_dyken.py").unlink()
    fake_hub.requests.clear()
    assert publishing.main([str(checkpoint), "--hub_model_id", REPO_ID]) == 1
    assert "code file modeling_dyken.py is missing" in capsys.readouterr().err
    assert fake_hub.requests == []


@pytest.fixture(scope="module")
def mintrec_release(tmp_path_factory):
    sizes = dict(num_train=8, num_dev=4, num_test=4, seed=0, length_scale=0.1)
    return write_synthetic_release(tmp_path_factory.mktemp("raw"), benchmark="MIntRec", **sizes)


def test_dataset_conversion_is_pushed_with_its_card_and_shards(fake_hub, mintrec_release, tmp_path, capsys):
    out_dir = tmp_path / "mintrec-parquet"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("my own notes, not part of the dataset")
    argv = ["convert", str(mintrec_release), str(out_dir), "--push_to_hub", DATASET_REPO_ID, "--private",
            "--token", TOKEN]  # fmt: skip
    assert datasets_main(argv) == 0, capsys.readouterr().err

    assert fake_hub.created_repos == [
        {"name": "mintrec", "organization": "someone", "visibility": "private", "type": "dataset"}
    ]
    commit_request = next(request for name, request in fake_hub.requests if name == "commit")
    assert commit_request.url.path.startswith(f"/api/datasets/{DATASET_REPO_ID}/commit/")
    # The card and the shards, byte for byte; nothing else of the folder.
    committed = fake_hub.committed_files()
    shards = sorted(f"data/{path.name}" for path in (out_dir / "data").glob("*.parquet"))
    assert sorted(committed) == ["README.md"] + shards
    for path in committed:
        assert committed[path] == ("file", (out_dir / path).read_bytes()), path
    card = DatasetCard(committed["README.md"][1].decode())
    assert card.data.license == "cc-by-nc-sa-4.0"
    assert f'load_dataset("{DATASET_REPO_ID}")' in card.text and str(tmp_path) not in card.text
    assert f"Pushed to https://huggingface.co/datasets/{DATASET_REPO_ID}" in capsys.readouterr().out


def test_failed_dataset_push_names_the_repository_and_the_token(fake_hub, mintrec_release, tmp_path, capsys):
    fake_hub.fail["create"] = (401, "Invalid credentials in Authorization header")
    argv = ["convert", str(mintrec_release), str(tmp_path / "out"), "--push_to_hub", DATASET_REPO_ID,
            "--token", "hf_bad"]  # fmt: skip
    assert datasets_main(argv) == 1
    message = capsys.readouterr().err
    assert f"Creating the Hub dataset repository {DATASET_REPO_ID} failed: HTTP 401" in message
    assert "The Hub did not accept the token" in message
    assert fake_hub.commits == []
