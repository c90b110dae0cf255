"""End-to-end tests of train_accelerate.py on tiny synthetic releases (official layout) with a tiny random BERT.

The trainer runs as users run it (`python train_accelerate.py ...`, `accelerate launch ...`) in subprocesses with
HF_HUB_OFFLINE=1; the Hub upload runs in-process, against the stand-in Hub of conftest.py. Tiny sizes keep each run
to a few seconds: what is tested is the plumbing (data, checkpoints, gathering, saving, reports), not accuracy.
"""

import hashlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoTokenizer, BertConfig, BertModel

from datasets_scripts import load_mintrec
from datasets_scripts.synthetic import NONVERBAL_INTENTS, write_synthetic_release
from modeling_dyken import DyKenForSequenceClassification, resolve_text_model_path


REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "train_accelerate.py"
sys.path.insert(0, str(REPO_ROOT))
import train_accelerate  # noqa: E402
from dyken_hyena.arguments import build_parser  # noqa: E402
from dyken_hyena.checkpoints import complete_checkpoints  # noqa: E402

CLOSED_SET_METRICS = ("accuracy", "f1_macro", "precision_macro", "recall_macro", "f1_weighted", "precision_weighted")
OPEN_SET_METRICS = ("f1_is", "f1_oos", "open_accuracy", "open_f1_macro", "auroc", "fpr95")
SIZES = dict(num_train=40, num_dev=21, num_test=23)  # odd dev/test sizes: two processes must not duplicate rows
CHECKPOINT_LIMIT = 2


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    # A tiny random BERT with the MiniLM tokenizer: any BERT-family folder works as --text_model.
    tokenizer = AutoTokenizer.from_pretrained(resolve_text_model_path("all-MiniLM-L6-v2"))
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(root / "tiny-bert")
    tokenizer.save_pretrained(root / "tiny-bert")
    mintrec = write_synthetic_release(root / "mintrec", "MIntRec", length_scale=0.1, **SIZES)
    mintrec2 = write_synthetic_release(
        root / "mintrec2", "MIntRec2.0", num_train=60, num_dev=30, num_test=30,
        num_ood_train=16, num_ood_dev=8, num_ood_test=12, length_scale=0.1,
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_CACHE": str(root / "hf-datasets"),
        "OMP_NUM_THREADS": "1",  # tiny models: threads only add overhead, and 2 processes share 2 cores
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("ACCELERATE_USE_CPU", None)
    return SimpleNamespace(root=root, tiny_bert=root / "tiny-bert", mintrec=mintrec, mintrec2=mintrec2, env=env)


def tiny_args(assets, output_dir, *extra):
    return [
        "--dataset", str(assets.mintrec), "--text_model", str(assets.tiny_bert),
        "--output_dir", str(output_dir), "--learning_rate", "1e-3", "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "8", "--logging_steps", "2", "--report_to", "none", *extra,
    ]


# The run the kill-and-resume test must reproduce; also the end-to-end run.
REFERENCE = ("--fusion", "dyken", "text", "--seeds", "0", "1", "--num_train_epochs", "3", "--checkpointing_steps", "4",
             "--checkpoints_total_limit", str(CHECKPOINT_LIMIT))


def run_script(arguments, env, launcher=(sys.executable,), cwd=None, timeout=300):
    process = subprocess.run(
        [*launcher, str(SCRIPT), *arguments], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
    assert process.returncode == 0, f"training failed:\n{process.stdout[-3000:]}\n{process.stderr[-6000:]}"
    return process


@pytest.fixture(scope="module")
def reference_run(assets):
    output_dir = assets.root / "reference"
    run_script(tiny_args(assets, output_dir, *REFERENCE, "--with_tracking", "--report_to", "tensorboard"), assets.env)
    return output_dir


def assert_fraction(value, where):
    assert isinstance(value, float) and 0.0 <= value <= 1.0, f"{where} = {value!r} is not a fraction in [0, 1]"


def assert_results_schema(results, fusions, seeds, open_set=False):
    assert set(results) == {"runs", "summary"}
    assert [(run["fusion"], run["seed"]) for run in results["runs"]] == [(f, s) for f in fusions for s in seeds]
    metrics = CLOSED_SET_METRICS + (OPEN_SET_METRICS if open_set else ())
    for run in results["runs"]:
        for split in ("validation", "test"):
            for metric in (metrics if split == "test" else CLOSED_SET_METRICS):
                assert_fraction(run[split][metric], f"{run['fusion']}/{run['seed']} {split} {metric}")
        for name, value in run["test_per_class_f1"].items():
            assert_fraction(value, f"test F1 of {name}")
    assert list(results["summary"]) == list(fusions)
    for fusion, summary in results["summary"].items():
        for metric in metrics:
            values = [run["test"][metric] for run in results["runs"] if run["fusion"] == fusion]
            assert summary[metric]["mean"] == pytest.approx(np.mean(values))
            assert summary[metric]["std"] == pytest.approx(np.std(values, ddof=1) if len(values) > 1 else 0.0)


def test_every_option_is_documented():
    parser = build_parser()
    undocumented = [a.dest for a in parser._actions if a.option_strings and not (a.help or "").strip()]
    assert undocumented == []


def test_options_from_a_file_with_preset_and_command_line_overrides(tmp_path, capsys):
    options = tmp_path / "options.yaml"
    options.write_text(
        "preset: mintrec\nfusion: [dyken, mag]\nseeds: [1, 2]\nlearning_rate: 2e-5\nuse_long_conv: false\n"
        "model_config_overrides: {kernel_heads: 6}\n"
    )
    args = train_accelerate.parse_args(["--config", str(options), "--seeds", "3", "--num_train_epochs", "5"])
    assert args.fusion == ["dyken", "mag"] and args.seeds == [3]  # the flag beats the file
    assert args.learning_rate == 2e-5 and args.use_long_conv is False  # YAML's "2e-5" string converted by argparse
    assert args.model_config_overrides == {"kernel_heads": 6}
    assert (args.per_device_train_batch_size, args.early_stopping_patience, args.metric_for_best_model) == (16, 8, "f1_macro")
    assert args.num_train_epochs == 5  # the preset says 100, the command line wins
    assert train_accelerate.parse_args(["--preset", "mintrec2"]).metric_for_best_model == "accuracy"

    options.write_text("fusions: [dyken]\n")
    with pytest.raises(SystemExit):
        train_accelerate.parse_args(["--config", str(options)])
    assert "options.yaml: unknown option 'fusions'" in capsys.readouterr().err


def test_dropout_option_sets_every_dropout_but_mags_and_presets_keep_the_models_own():
    data = SimpleNamespace(label_names=["a", "b", "c"])
    processor = SimpleNamespace(max_text_length=30, max_audio_length=480, max_video_length=230)
    default_job = train_accelerate.build_model(train_accelerate.parse_args([]), "dyken", data, processor)
    config = default_job.config
    assert (config.text_config.hidden_dropout_prob, config.text_config.attention_probs_dropout_prob) == (0.0, 0.0)
    assert (config.cross_attention_dropout, config.hyena_dropout, default_job.dropout.p) == (0.0, 0.0, 0.0)
    assert train_accelerate.build_model(train_accelerate.parse_args([]), "mag", data, processor).config.mag_dropout == 0.5
    preset = train_accelerate.build_model(train_accelerate.parse_args(["--preset", "mintrec"]), "dyken", data, processor)
    assert preset.config.text_config.hidden_dropout_prob == 0.1 and preset.config.hyena_dropout == 0.1


def test_alignment_option_defaults_to_the_models_own_and_keeps_mag_aligned():
    data = SimpleNamespace(label_names=["a", "b", "c"])
    processor = SimpleNamespace(max_text_length=30, max_audio_length=480, max_video_length=230)

    def alignment(argv, fusion):
        return train_accelerate.build_model(train_accelerate.parse_args(argv), fusion, data, processor).config.alignment

    assert (alignment([], "dyken"), alignment([], "mag")) == ("none", "ctc")
    assert (alignment(["--alignment", "none"], "dyken"), alignment(["--alignment", "none"], "mag")) == ("none", "ctc")
    assert (alignment(["--alignment", "avg_pool"], "dyken"), alignment(["--alignment", "avg_pool"], "mag")) == (
        "avg_pool", "avg_pool"
    )
    paper_setup = ["--config", "mintrec", "--text_model", "all-MiniLM-L6-v2"]  # a config shipped with the package
    assert alignment(paper_setup, "dyken") == "ctc"


def test_single_process_run_trains_evaluates_and_saves(assets, reference_run, tmp_path):
    results = json.loads((reference_run / "results.json").read_text())
    assert_results_schema(results, ["dyken", "text"], [0, 1])
    for run in results["runs"]:
        assert run["num_examples"] == {"validation": SIZES["num_dev"], "test": SIZES["num_test"]}
        assert run["completed_steps"] == 3 * math.ceil(SIZES["num_train"] / 4)
        assert set(run["test_nonverbal"]["intents"]) == set(NONVERBAL_INTENTS)
    markdown = (reference_run / "results.md").read_text()
    assert "| Method | ACC | F1 | P | R | WF1 | WP |" in markdown and "DyKen-Hyena" in markdown and "Taunt" in markdown
    for plot in ("training_curves.png", "confusion_matrix_dyken.png", "confusion_matrix_text.png", "dynamic_kernels_dyken.png"):
        assert (reference_run / "plots" / plot).stat().st_size > 10_000, plot
    log_lines = [json.loads(line) for line in (reference_run / "logs" / "train_log.jsonl").read_text().splitlines()]
    assert any("dyken/seed_0/train_loss" in line for line in log_lines)
    # TensorBoard (installed with the test extras) gets the same scalars through Accelerate's tracker.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    event_files = list((reference_run / "logs").rglob("events.out.tfevents.*"))
    assert event_files, "no TensorBoard event file"
    events = EventAccumulator(str(event_files[0].parent)).Reload()
    losses = [event.value for event in events.Scalars("dyken/seed_0/train_loss")]
    assert losses and all(math.isfinite(loss) for loss in losses)
    # Finished runs keep no training-state checkpoints (--keep_checkpoints not given).
    assert not list(reference_run.glob("*/seed_*/checkpoints"))

    # The saved checkpoint is the best seed's best weights: it reproduces that run's test accuracy.
    best = reference_run / "dyken" / "best_checkpoint"
    training_args = json.loads((best / "training_args.json").read_text())
    dyken_runs = [run for run in results["runs"] if run["fusion"] == "dyken"]
    best_run = max(dyken_runs, key=lambda run: run["validation"]["f1_macro"])
    assert training_args["seed"] == best_run["seed"] and training_args["fusion"] == "dyken"
    model = DyKenForSequenceClassification.from_pretrained(best).eval()
    initial = BertModel.from_pretrained(assets.tiny_bert).state_dict()
    trained = model.dyken.text_model.state_dict()
    assert any(not torch.equal(trained[name], initial[name]) for name in initial), "the encoder was not trained"
    processor = train_accelerate.DyKenProcessor.from_pretrained(best)
    test = load_mintrec(assets.mintrec, cache_dir=str(assets.root / "hf-datasets"))["test"].with_format("numpy")
    batch = processor.collate([test[i] for i in range(len(test))])
    labels = batch.pop("labels")
    with torch.no_grad():
        accuracy = (model(**batch).logits.argmax(-1) == labels).float().mean().item()
    assert accuracy == pytest.approx(best_run["test"]["accuracy"])
    card = ModelCard.load(best / "README.md")  # a synthetic run claims no benchmark result
    assert card.data.eval_results is None and "Demonstration checkpoint trained on synthetic data" in card.text

    # A user's environment: another folder, offline, Auto classes through the code files saved with the weights.
    code = (
        "import json, sys, numpy as np\n"
        "from transformers import AutoModelForSequenceClassification, AutoProcessor\n"
        "model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "processor = AutoProcessor.from_pretrained(sys.argv[1], trust_remote_code=True)\n"
        "batch = processor(text=['oh, great job.'], audio_features=[np.ones((7, 768))], video_features=[np.ones((3, 256))])\n"
        "print(json.dumps({'class': type(model).__name__, 'module': type(model).__module__,\n"
        "                  'shape': list(model(**batch).logits.shape), 'labels': len(model.config.id2label)}))\n"
    )
    env = {key: value for key, value in assets.env.items() if key != "PYTHONPATH"}
    loaded = subprocess.run([sys.executable, "-c", code, str(best)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    info = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert info["class"] == "DyKenForSequenceClassification" and info["module"].startswith("transformers_modules")
    assert info["shape"] == [1, 20] and info["labels"] == 20


def test_killed_run_resumes_to_the_same_results(assets, reference_run):
    output_dir = assets.root / "killed"
    first_checkpoint = output_dir / "dyken" / "seed_0" / "checkpoints" / "checkpoint-4" / "checkpoint_complete.json"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *tiny_args(assets, output_dir, *REFERENCE)], env=assets.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.time() + 240
    while not first_checkpoint.is_file() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)  # mid-epoch: 10 batches per epoch, a checkpoint every 4 steps
    _, stderr = process.communicate()
    assert first_checkpoint.is_file(), f"no checkpoint was written before the kill:\n{stderr[-3000:]}"
    assert not (output_dir / "results.json").exists(), "the run finished before it could be killed"
    for checkpoints in output_dir.glob("*/seed_*/checkpoints"):
        assert len(complete_checkpoints(checkpoints)) <= CHECKPOINT_LIMIT

    # Debris a crash can leave: a half-written staging folder and a checkpoint folder without its marker.
    checkpoints = output_dir / "dyken" / "seed_0" / "checkpoints"
    (checkpoints / ".staging-checkpoint-996").mkdir(parents=True, exist_ok=True)
    (checkpoints / "checkpoint-999").mkdir(parents=True, exist_ok=True)
    (checkpoints / "checkpoint-999" / "model.safetensors").write_bytes(b"truncated")

    run_script(tiny_args(assets, output_dir, *REFERENCE, "--resume_from_checkpoint", "latest"), assets.env)
    resumed = json.loads((output_dir / "results.json").read_text())
    expected = json.loads((reference_run / "results.json").read_text())
    for got, want in zip(resumed["runs"], expected["runs"], strict=True):
        for key in ("fusion", "seed", "best_epoch", "completed_steps", "num_examples"):
            assert got[key] == want[key], key
        for key in ("validation", "test", "test_per_class_f1"):
            assert got[key] == pytest.approx(want[key], abs=1e-9), key
    for run_dir in ("dyken/seed_0", "dyken/seed_1", "text/seed_0", "text/seed_1"):
        got = json.loads((output_dir / run_dir / "run_result.json").read_text())["details"]
        want = json.loads((reference_run / run_dir / "run_result.json").read_text())["details"]
        # The training trajectory itself (dropout masks, data order, optimizer state) is the same.
        assert [h["train_loss"] for h in got["history"]] == pytest.approx([h["train_loss"] for h in want["history"]], rel=1e-6)
        assert np.array(got["loss_log"]) == pytest.approx(np.array(want["loss_log"]), rel=1e-6)


def test_two_processes_gather_without_duplicates(assets):
    output_dir = assets.root / "two_processes"
    env = {**assets.env, "ACCELERATE_USE_CPU": "1"}
    launcher = (sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                "--num_machines", "1", "--dynamo_backend", "no", "--main_process_port", "29517")
    arguments = tiny_args(assets, output_dir, "--fusion", "dyken", "mag", "--max_train_steps", "4",
                          "--gradient_accumulation_steps", "2", "--checkpointing_steps", "2")
    process = run_script(arguments, env, launcher=launcher)
    assert "Num processes: 2" in process.stderr
    results = json.loads((output_dir / "results.json").read_text())
    assert_results_schema(results, ["dyken", "mag"], [0])
    for run in results["runs"]:
        assert run["num_examples"] == {"validation": SIZES["num_dev"], "test": SIZES["num_test"]}
        assert run["completed_steps"] == 4
    for fusion in ("dyken", "mag"):
        assert (output_dir / fusion / "best_checkpoint" / "model.safetensors").is_file()
    history = json.loads((output_dir / "dyken" / "seed_0" / "run_result.json").read_text())["details"]["history"]
    assert len(history) == 2  # 20 rows per process = 5 batches = 3 optimizer steps per epoch: 4 steps end in epoch 2
    log = (output_dir / "logs" / "train_log.jsonl").read_text()
    assert log.count('"dyken/seed_0/train_loss_epoch"') == len(history)  # only the main process logs


def test_open_set_run_reports_out_of_scope_metrics(assets):
    output_dir = assets.root / "open_set"
    arguments = tiny_args(
        assets, output_dir, "--preset", "mintrec2", "--fusion", "dyken", "mag", "--max_train_steps", "6",
        "--outlier_exposure_weight", "0.5", "--checkpointing_steps", "no",
    )
    arguments[arguments.index("--dataset") + 1] = str(assets.mintrec2)
    run_script(arguments, assets.env)
    results = json.loads((output_dir / "results.json").read_text())
    assert_results_schema(results, ["dyken", "mag"], [0], open_set=True)
    for run in results["runs"]:
        assert run["num_examples"]["test"] == 30 + 12  # in-scope test + out-of-scope test
        assert run["num_examples"]["train"] == 60  # DOC thresholds come from the training logits
        assert len(run["test_per_class_f1"]) == 30
    assert "F1-OOS" in (output_dir / "results.md").read_text()
    config = json.loads((output_dir / "dyken" / "best_checkpoint" / "config.json").read_text())
    assert len(config["id2label"]) == 30 and "UNK" not in config["label2id"]


# ---------------------------------------------------------------------------------------------------------------
# --push_to_hub, in-process, against the stand-in Hub of conftest.py
# ---------------------------------------------------------------------------------------------------------------


def file_hashes(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning")
def test_push_to_hub_uploads_the_best_checkpoint_and_survives_a_failed_upload(assets, fake_hub, monkeypatch, caplog):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(assets.root / "hf-datasets"))
    output_dir = assets.root / "pushed"
    hub_args = ["--push_to_hub", "--hub_model_id", "someone/dyken-hyena-mintrec", "--hub_token", "hf_not_a_real_token", "--hub_private_repo"]
    arguments = tiny_args(assets, output_dir, "--fusion", "dyken", "--max_train_steps", "3", *hub_args)
    assert train_accelerate.main(arguments) == 0
    assert fake_hub.created_repos and fake_hub.created_repos[0]["visibility"] == "private"
    committed = fake_hub.committed_files()
    for name in ("config.json", "model.safetensors", "modeling_dyken.py", "configuration_dyken.py",
                 "processing_dyken.py", "processor_config.json", "tokenizer.json", "README.md"):
        assert name in committed, name
    card = committed["README.md"][1].decode()
    assert "DyKen-Hyena" in card and "Demonstration checkpoint trained on synthetic data" in card

    # The next upload fails at the commit: main says so (exit status 1) and the local checkpoint stays whole.
    fake_hub.fail = {"commit": (403, "no write access to this repository")}  # a 5xx would be retried with backoff
    best = output_dir / "dyken" / "best_checkpoint"
    before = file_hashes(best)
    status = train_accelerate.main(arguments + ["--resume_from_checkpoint", "latest"])  # reuses the finished run
    assert status == 1
    assert "HTTP 403 (no write access to this repository)" in caplog.text and "local checkpoint" in caplog.text
    assert file_hashes(best) == before


# ---------------------------------------------------------------------------------------------------------------
# A run whose training loss stops being finite
# ---------------------------------------------------------------------------------------------------------------


def test_a_diverging_run_stops_with_its_best_weights_says_so_and_the_next_seed_trains(assets, tmp_path, monkeypatch):
    steps_per_epoch = math.ceil(SIZES["num_train"] / 4)
    nan_from_batch = steps_per_epoch + 3  # the fourth batch of epoch 2
    real_training_step = train_accelerate.training_step

    def diverging_in_seed_0(ctx, model, batch, seed, batch_index):
        loss = real_training_step(ctx, model, batch, seed, batch_index)
        return loss * float("nan") if seed == 0 and batch_index >= nan_from_batch else loss

    monkeypatch.setattr(train_accelerate, "training_step", diverging_in_seed_0)
    output_dir = tmp_path / "job"
    arguments = tiny_args(assets, output_dir, "--fusion", "dyken", "--seeds", "0", "1", "--num_train_epochs", "3")
    assert train_accelerate.main(arguments) == 0

    diverged, healthy = json.loads((output_dir / "results.json").read_text())["runs"]
    # Stopped before the optimizer step whose loss was NaN; reported with the weights of its one dev evaluation.
    assert diverged["diverged_at_step"] == nan_from_batch + 1 and diverged["completed_steps"] == nan_from_batch
    assert diverged["best_epoch"] == 1
    history = json.loads((output_dir / "dyken" / "seed_0" / "run_result.json").read_text())["details"]["history"]
    assert [entry["epoch"] for entry in history] == [1]
    assert diverged["validation"] == pytest.approx(history[0]["validation"])  # the best weights, not the last ones
    assert healthy["diverged_at_step"] is None and healthy["completed_steps"] == 3 * steps_per_epoch
    assert f"| 0 | 1 (training diverged at step {nan_from_batch + 1}) |" in (output_dir / "results.md").read_text()
    best = DyKenForSequenceClassification.from_pretrained(output_dir / "dyken" / "best_checkpoint")
    assert all(torch.isfinite(parameter).all() for parameter in best.parameters())


def test_a_run_that_diverges_before_its_first_evaluation_stops_the_job_naming_the_step(assets, tmp_path):
    # A learning rate no model survives: the weights overflow within a few steps.
    arguments = tiny_args(assets, tmp_path / "job", "--fusion", "dyken", "--learning_rate", "1e30",
                          "--fusion_learning_rate", "1e30", "--max_grad_norm", "0")
    process = subprocess.run([sys.executable, str(SCRIPT), *arguments], env=assets.env, capture_output=True, text=True,
                             timeout=300)
    assert process.returncode == 1, process.stderr[-3000:]
    assert "[dyken/seed_0] the training loss is not finite at optimizer step" in process.stderr
    assert "before the first dev evaluation" in process.stderr and "--learning_rate" in process.stderr
    assert "Traceback" not in process.stderr
    assert not (tmp_path / "job" / "results.json").exists()


# ---------------------------------------------------------------------------------------------------------------
# Nothing of the user's is lost or silently reused: data folders, output folders, resumes, pushed files
# ---------------------------------------------------------------------------------------------------------------


def test_synthetic_data_dir_never_writes_over_a_real_release(assets, tmp_path):
    real = tmp_path / "MIntRec"  # a release in the official layout without the generator's metadata: a real one
    shutil.copytree(assets.mintrec, real)
    (real / "synthetic_metadata.json").unlink()
    before = file_hashes(real)
    arguments = tiny_args(assets, tmp_path / "out", "--fusion", "text", "--max_train_steps", "1")
    arguments[arguments.index("--dataset") + 1: arguments.index("--dataset") + 2] = ["synthetic", "--data_dir", str(real)]
    with pytest.raises(train_accelerate.JobSetupError, match=r"MIntRec is not empty and holds no synthetic release"):
        train_accelerate.main(arguments)
    with pytest.raises(FileExistsError, match=r"found: audio_data, dev.tsv, test.tsv, train.tsv, video_data"):
        write_synthetic_release(real, "MIntRec", length_scale=0.1, **SIZES)
    assert file_hashes(real) == before

    # Read as what it is, a MIntRec release: its card reports benchmark results, as fractions (the Hub's scale).
    arguments[arguments.index("--dataset") + 1] = "mintrec"
    assert train_accelerate.main(arguments) == 0
    assert file_hashes(real) == before
    card = ModelCard.load(tmp_path / "out" / "text" / "best_checkpoint" / "README.md")
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert {result.dataset_name for result in card.data.eval_results} == {"MIntRec"}
    accuracy = next(r.metric_value for r in card.data.eval_results if r.metric_type == "accuracy")
    assert accuracy == pytest.approx(results["runs"][0]["test"]["accuracy"])

    # The generator's own folders may be (re)written: empty, complete, or left incomplete by a killed write.
    empty = tmp_path / "empty"
    empty.mkdir()
    write_synthetic_release(empty, "MIntRec", length_scale=0.1, **SIZES)
    (empty / "synthetic_metadata.json").unlink()
    (empty / ".synthetic_release_incomplete").touch()
    write_synthetic_release(empty, "MIntRec", length_scale=0.1, **SIZES)
    assert file_hashes(empty) == file_hashes(assets.mintrec)  # same parameters, same release


def test_used_output_dir_is_refused_and_nothing_is_removed_before_the_data_has_loaded(assets, reference_run, tmp_path):
    earlier = tmp_path / "earlier_job"
    shutil.copytree(reference_run, earlier)
    before = file_hashes(earlier)

    # As users run it: one clear message, exit status 2, no traceback, nothing touched.
    process = subprocess.run(
        [sys.executable, str(SCRIPT), *tiny_args(assets, earlier, "--fusion", "text")],
        env=assets.env, capture_output=True, text=True, timeout=120,
    )
    assert process.returncode == 2 and "is not empty" in process.stderr and "--overwrite_output_dir" in process.stderr
    assert "Traceback" not in process.stderr
    assert file_hashes(earlier) == before

    # Starting over, but with a typo in the data folder: the job fails before anything is removed.
    typo = ["--dataset", "mintrec", "--data_dir", str(tmp_path / "MintRec"), "--overwrite_output_dir", "--fusion", "text"]
    with pytest.raises((FileNotFoundError, ValueError), match="MintRec"):
        train_accelerate.main(tiny_args(assets, earlier, *typo))
    assert file_hashes(earlier) == before

    # Starting over for real: the earlier results, logs and this job's runs are replaced, not mixed in.
    restart = ["--overwrite_output_dir", "--fusion", "text", "--seeds", "1", "--max_train_steps", "2", "--report_to", "none"]
    assert train_accelerate.main(tiny_args(assets, earlier, *restart)) == 0
    results = json.loads((earlier / "results.json").read_text())
    assert [(run["fusion"], run["seed"], run["completed_steps"]) for run in results["runs"]] == [("text", 1, 2)]
    assert json.loads((earlier / "text" / "best_checkpoint" / "training_args.json").read_text())["max_train_steps"] == 2
    log = (earlier / "logs" / "train_log.jsonl").read_text()
    assert "dyken/seed_0/train_loss" not in log  # the earlier job's log went with it


def test_resume_under_other_options_is_refused_naming_them(assets, reference_run, tmp_path):
    earlier = tmp_path / "earlier_job"
    shutil.copytree(reference_run, earlier)
    before = file_hashes(earlier)
    changed = tiny_args(assets, earlier, *REFERENCE, "--resume_from_checkpoint", "latest",
                        "--learning_rate", "5e-4", "--alignment", "ctc")
    with pytest.raises(train_accelerate.JobSetupError) as refused:
        train_accelerate.main(changed)
    message = str(refused.value)
    for run in ("dyken/seed_0", "dyken/seed_1", "text/seed_0", "text/seed_1"):
        assert run in message
    assert "--learning_rate 0.001 -> 0.0005" in message and "--alignment None -> 'ctc'" in message
    assert file_hashes(earlier) == before

    # A checkpoint of an unfinished run is checked the same way; options that do not change a run may differ.
    args = train_accelerate.parse_args(tiny_args(assets, tmp_path / "job", "--fusion", "dyken", "--resume_from_checkpoint", "latest"))
    checkpoint = tmp_path / "job" / "dyken" / "seed_0" / "checkpoints" / "checkpoint-4"
    checkpoint.mkdir(parents=True)
    (checkpoint / "checkpoint_complete.json").write_text(json.dumps({"fusion": "dyken", "seed": 0}))
    (checkpoint / "run_arguments.json").write_text(json.dumps(train_accelerate.run_arguments(args, "dyken", 0, 1)))
    args.logging_steps, args.per_device_eval_batch_size = 5, 3
    plan = train_accelerate.plan_runs(args, tmp_path / "job", num_processes=1)
    assert plan[0].resume_from == checkpoint and plan[0].reuse_result is None
    args.max_train_steps = 7
    with pytest.raises(train_accelerate.JobSetupError, match=r"dyken/seed_0 .*--max_train_steps None -> 7"):
        train_accelerate.plan_runs(args, tmp_path / "job", num_processes=1)
    with pytest.raises(train_accelerate.JobSetupError, match=r"--num_processes 1 -> 2"):
        train_accelerate.plan_runs(train_accelerate.parse_args(
            tiny_args(assets, tmp_path / "job", "--fusion", "dyken", "--resume_from_checkpoint", "latest")
        ), tmp_path / "job", num_processes=2)


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--num_train_epochs", "0", "must be >= 1"),
        ("--max_train_steps", "0", "must be >= 1"),
        ("--learning_rate", "-1e-4", "must be > 0"),
        ("--learning_rate", "nan", "must be a finite number"),
        ("--checkpointing_steps", "0", "must be a number of optimizer steps >= 1"),
        ("--per_device_train_batch_size", "0", "must be >= 1"),
        ("--warmup_ratio", "1.5", "must be < 1"),
        ("--seeds", "-1", "must be >= 0"),
        ("--hub_model_id", "me/my model", "Repo id must use alphanumeric chars"),
        ("--hub_model_id", "a/b/c", "Repo id must be in the form 'repo_name' or 'namespace/repo_name'"),
    ],
)
def test_bad_option_values_are_refused_when_parsed(option, value, expected, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        train_accelerate.parse_args([f"{option}={value}"])
    assert exited.value.code == 2
    assert f"argument {option}: {expected}" in capsys.readouterr().err
    options = tmp_path / "options.yaml"  # a --config file goes through the same checks
    options.write_text(f"{option[2:]}: {json.dumps(value)}\n")
    with pytest.raises(SystemExit):
        train_accelerate.parse_args(["--config", str(options)])
    assert f"argument {option}: {expected}" in capsys.readouterr().err


def test_pushed_files_name_no_local_folder(assets, reference_run):
    best = reference_run / "dyken" / "best_checkpoint"
    training_args = json.loads((best / "training_args.json").read_text())
    assert (training_args["dataset"], training_args["model_name_or_path"], training_args["output_dir"]) == (
        "mintrec", "tiny-bert", "reference"
    )
    for name in ("training_args.json", "README.md", "config.json"):
        assert str(assets.root) not in (best / name).read_text(), name


def test_each_part_of_the_model_has_its_learning_rate():
    data = SimpleNamespace(label_names=["a", "b", "c"])
    processor = SimpleNamespace(max_text_length=30, max_audio_length=480, max_video_length=230)

    def rates(argv, fusion="dyken"):
        args = train_accelerate.parse_args(argv)
        model = train_accelerate.build_model(args, fusion, data, processor)
        groups = train_accelerate.optimizer_parameter_groups(model, args)
        assert sum(len(group["params"]) for group in groups) == len(list(model.parameters()))
        rate_of = {id(p): group["lr"] for group in groups for p in group["params"]}
        by_name = {name: rate_of[id(p)] for name, p in model.named_parameters()}
        parts = {"encoder": "dyken.text_model.", "hyena": "dyken.fusion.hyena.", "context": "dyken.fusion.context.",
                 "kernels": "dyken.fusion.kernel_generator.", "fusion": "dyken.fusion.", "classifier": "classifier."}
        found = {part: {rate for name, rate in by_name.items() if name.startswith(prefix)} for part, prefix in parts.items()}
        return {part: rates for part, rates in found.items() if rates}

    # The defaults: a slow Hyena operator, fast modules that read audio and video, the encoder at its own rate.
    assert rates(["--learning_rate", "2e-5"]) == {
        "encoder": {2e-5}, "hyena": {2e-4}, "context": {3e-3}, "kernels": {3e-3}, "fusion": {2e-4, 3e-3},
        "classifier": {3e-3}}
    same = rates(["--fusion_learning_rate", "5e-4", "--modulation_learning_rate", "-1"])
    assert same["hyena"] == same["context"] == same["kernels"] == same["classifier"] == {5e-4}
    assert rates(["--fusion_learning_rate", "5e-4"], fusion="mag") == {
        "encoder": {5e-5}, "fusion": {5e-4}, "classifier": {5e-4}}


def test_modulation_weight_decay_applies_to_the_hyena_operators_matrices_only():
    data = SimpleNamespace(label_names=["a", "b", "c"])
    processor = SimpleNamespace(max_text_length=30, max_audio_length=480, max_video_length=230)

    def decays(argv):
        args = train_accelerate.parse_args(argv)
        model = train_accelerate.build_model(args, "dyken", data, processor)
        groups = train_accelerate.optimizer_parameter_groups(model, args)
        decay_of = {id(p): group["weight_decay"] for group in groups for p in group["params"]}
        named = dict(model.named_parameters())
        return {name: decay_of[id(p)] for name, p in named.items()}

    default = decays([])
    assert default["dyken.fusion.hyena.in_proj.weight"] == default["dyken.fusion.context.output_projection.weight"] == 0.01
    strong = decays(["--modulation_weight_decay", "5"])
    assert strong["dyken.fusion.hyena.in_proj.weight"] == strong["dyken.fusion.hyena.out_proj.weight"] == 5.0
    assert strong["dyken.fusion.hyena.in_proj.bias"] == 0.0  # biases never decay
    assert strong["dyken.fusion.context.output_projection.weight"] == strong["classifier.weight"] == 0.01
    assert {name: value for name, value in strong.items() if ".hyena." not in name} == {
        name: value for name, value in default.items() if ".hyena." not in name}


def test_kernel_normalization_option_reaches_the_model_config():
    data = SimpleNamespace(label_names=["a", "b", "c"])
    processor = SimpleNamespace(max_text_length=30, max_audio_length=480, max_video_length=230)
    for value in ("gated_softmax", "none"):
        args = train_accelerate.parse_args(["--kernel_normalization", value, "--short_kernel_size", "1"])
        config = train_accelerate.build_model(args, "dyken", data, processor).config
        assert (config.kernel_normalization, config.short_kernel_size) == (value, 1)


# ---------------------------------------------------------------------------------------------------------------
# The command line of the transformers examples: --seed, --num_warmup_steps, --eval_only, a checkpoint to fine-tune
# ---------------------------------------------------------------------------------------------------------------


def test_seed_and_warmup_steps_set_the_run(assets, tmp_path):
    arguments = tiny_args(assets, tmp_path / "job", "--fusion", "text", "--seed", "4", "--max_train_steps", "3",
                          "--logging_steps", "1", "--lr_scheduler_type", "constant_with_warmup", "--num_warmup_steps", "2")
    assert train_accelerate.main(arguments) == 0
    results = json.loads((tmp_path / "job" / "results.json").read_text())
    assert [(run["fusion"], run["seed"]) for run in results["runs"]] == [("text", 4)]
    loss_log = json.loads((tmp_path / "job" / "text" / "seed_4" / "run_result.json").read_text())["details"]["loss_log"]
    # [step, loss, learning rate of the new modules (3e-3)]: half-way through the 2 warmup steps, then the full rate.
    assert [entry[2] for entry in loss_log] == pytest.approx([1.5e-3, 3e-3, 3e-3])


def test_eval_only_reproduces_a_checkpoints_results_and_a_checkpoint_trains_further(assets, reference_run, tmp_path):
    best = reference_run / "dyken" / "best_checkpoint"
    expected = json.loads((reference_run / "results.json").read_text())
    best_seed = json.loads((best / "training_args.json").read_text())["seed"]
    best_run = next(run for run in expected["runs"] if (run["fusion"], run["seed"]) == ("dyken", best_seed))
    arguments = ["--eval_only", "--model_name_or_path", str(best), "--dataset", str(assets.mintrec),
                 "--output_dir", str(tmp_path / "evaluated")]
    assert train_accelerate.main(arguments) == 0
    evaluated = json.loads((tmp_path / "evaluated" / "results.json").read_text())["runs"]
    assert [(run["fusion"], run["seed"]) for run in evaluated] == [("dyken", best_seed)]
    for split in ("validation", "test"):
        assert evaluated[0][split] == pytest.approx(best_run[split], abs=1e-9)

    # The same checkpoint as the starting point of more training: its fusion, labels and architecture are kept.
    further = tiny_args(assets, tmp_path / "further", "--max_train_steps", "2")
    further[further.index("--text_model") + 1] = str(best)
    args = train_accelerate.parse_args(further)
    assert args.fusion == ["dyken"]
    assert train_accelerate.main(further) == 0
    continued = DyKenForSequenceClassification.from_pretrained(tmp_path / "further" / "dyken" / "best_checkpoint")
    assert continued.config.text_config.hidden_size == 32 and continued.config.num_labels == 20
    with pytest.raises(SystemExit):
        train_accelerate.parse_args(further + ["--fusion", "text"])  # a DyKen checkpoint is not a text-only model
    with pytest.raises(SystemExit):
        train_accelerate.parse_args(["--eval_only", "--model_name_or_path", str(assets.tiny_bert)])  # not a checkpoint


def test_separate_clipping_keeps_the_fusions_gradients_from_shrinking_the_encoders_step():
    from accelerate import Accelerator

    from tiny_dyken import build

    accelerator = Accelerator(cpu=True)

    def clipped(fusion, clipping, text_norm=0.5):
        """Gradients after clipping: the text model's (norm text_norm) and the fusion's (norm 100 if there is one)."""
        model = build(fusion=fusion)
        args = train_accelerate.parse_args(["--grad_clipping", clipping, "--max_grad_norm", "1.0"])
        generator = torch.Generator().manual_seed(0)
        named = list(model.named_parameters())
        for name, parameter in named:
            parameter.grad = torch.randn(parameter.shape, generator=generator)
        for part, target in (("text", text_norm), ("fusion", 100.0)):
            grads = [p.grad for name, p in named if name.startswith("dyken.fusion.") == (part == "fusion")]
            if grads:
                norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
                for g in grads:
                    g.mul_(target / norm)
        before = {name: p.grad.clone() for name, p in named}
        train_accelerate.clip_gradients(accelerator, model, args)
        return before, {name: p.grad for name, p in named}

    def norm(grads, fusion_part):
        return torch.linalg.vector_norm(torch.stack(
            [torch.linalg.vector_norm(g) for name, g in grads.items() if name.startswith("dyken.fusion.") == fusion_part]
        )).item()

    before, separate = clipped("dyken", "separate")
    assert all(torch.equal(separate[name], before[name]) for name in before if not name.startswith("dyken.fusion."))
    assert norm(separate, True) == pytest.approx(1.0, rel=1e-4)
    _, shared = clipped("dyken", "global")  # one norm: the fusion's gradient shrinks the text model's 200-fold
    assert norm(shared, False) == pytest.approx(0.5 / math.hypot(0.5, 100.0), rel=1e-4)
    _, text_separate = clipped("text", "separate", text_norm=3.0)  # text-only BERT: clipped as before
    _, text_global = clipped("text", "global", text_norm=3.0)
    assert norm(text_global, False) == pytest.approx(1.0, rel=1e-4)
    for name in text_global:  # the same norm, summed in another order
        torch.testing.assert_close(text_separate[name], text_global[name], rtol=1e-6, atol=0)
