"""The checkpoint's own pipeline (pipeline_dyken.py): found by `pipeline(model=...)` where the package is not
installed, the model's probabilities, single and batched inputs, top_k, out-of-scope answers by the training job's
rule, what the trainer saves, raw clips; and the text-classification pipeline's misuse, warned about."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # pipeline_dyken, extraction_dyken and the trainer are top-level files
from datasets_scripts.synthetic import write_synthetic_release  # noqa: E402
from dyken_hyena.metrics import (  # noqa: E402
    doc_fit_thresholds,
    doc_oos_scores,
    doc_predict,
    max_softmax_fit_threshold,
    max_softmax_oos_scores,
    max_softmax_predict,
)
from dyken_hyena.publishing import check_checkpoint  # noqa: E402
from modeling_dyken import DyKenForSequenceClassification, resolve_text_model_path  # noqa: E402
from pipeline_dyken import (  # noqa: E402
    TASK,
    MultimodalIntentRecognitionPipeline,
    out_of_scope_decisions,
    read_out_of_scope_detector,
)
from processing_dyken import DyKenProcessor  # noqa: E402
from tiny_dyken import AUDIO_DIM, TINY_BERT, VIDEO_DIM, build  # noqa: E402


LABELS = ["Complain", "Praise", "Apologise", "Thank", "Taunt"]
TEXTS = ["oh, great idea.", "well, thanks a lot", "i'm so sorry about the sign", "are we doing this or not?",
         "that's just wonderful", "leave it on the shelf, please"]


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(resolve_text_model_path("all-MiniLM-L6-v2"))


@pytest.fixture(scope="module")
def tiny_parts(tokenizer):
    """A tiny model with MiniLM's vocabulary and named intents, and its processor (MIntRec's extractors)."""
    model = build(seed=3, text_config={**TINY_BERT, "vocab_size": tokenizer.vocab_size},
                  id2label=dict(enumerate(LABELS)), label2id={name: index for index, name in enumerate(LABELS)})
    processor = DyKenProcessor.for_benchmark("MIntRec", tokenizer, max_text_length=16, max_audio_length=40,
                                             max_video_length=24)
    return model, processor


def examples(seed=0):
    """Feature inputs as the pipeline takes them; the third has no audio, the fifth no video, the sixth no features."""
    rng = np.random.default_rng(seed)
    rows = []
    for index, text in enumerate(TEXTS):
        row = {"text": text}
        if index not in (2, 5):
            row["audio_features"] = rng.standard_normal((int(rng.integers(5, 60)), AUDIO_DIM)).astype(np.float32)
        if index not in (4, 5):
            row["video_features"] = rng.standard_normal((int(rng.integers(3, 30)), 1, VIDEO_DIM)).astype(np.float32)
        rows.append(row)
    return rows


def model_logits(model, processor, rows) -> np.ndarray:
    """(N, K) float64 logits of the model on the processor's batch of `rows`: what the pipeline must reproduce."""
    batch = processor.collate(rows)
    with torch.no_grad():
        return model(**batch).logits.double().numpy()


def softmax(logits):
    return torch.softmax(torch.as_tensor(logits), -1).numpy()


def _config(num_labels, detector):
    """A stand-in for a checkpoint's config: what `read_out_of_scope_detector` reads."""
    return type("Config", (), {"num_labels": num_labels, "out_of_scope_detector": detector})()


def assert_same_results(got, expected):
    assert [entry["label"] for entry in got] == [entry["label"] for entry in expected]
    np.testing.assert_allclose([entry["score"] for entry in got], [entry["score"] for entry in expected], atol=1e-6)


# ------------------------------------------------------------------------------------------------ the decision rule


def test_out_of_scope_decisions_agree_with_the_metrics_functions():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3000, 7)) * rng.choice([0.3, 2.0, 8.0], size=(3000, 1))
    labels = rng.integers(0, 7, size=3000)
    thresholds = doc_fit_thresholds(logits, labels).tolist()
    doc = read_out_of_scope_detector(_config(7, {"method": "doc", "thresholds": thresholds, "label": "UNK"}))
    predictions, scores = out_of_scope_decisions(logits, doc)
    np.testing.assert_array_equal(predictions, doc_predict(logits, doc["thresholds"]))
    np.testing.assert_allclose(scores, doc_oos_scores(logits), rtol=0, atol=1e-15)
    assert 0 < (predictions == 7).sum() < 3000  # both answers occur

    validation_labels = np.where(rng.random(3000) < 0.3, 7, labels)  # 30 % out of scope
    threshold = max_softmax_fit_threshold(logits, validation_labels)
    softmax_detector = read_out_of_scope_detector(_config(7, {"method": "max_softmax", "threshold": threshold,
                                                              "label": "UNK"}))
    predictions, scores = out_of_scope_decisions(logits, softmax_detector)
    np.testing.assert_array_equal(predictions, max_softmax_predict(logits, threshold))
    np.testing.assert_allclose(scores, max_softmax_oos_scores(logits), rtol=0, atol=1e-15)
    assert 0 < (predictions == 7).sum() < 3000


def test_out_of_scope_decisions_at_the_threshold_follow_the_official_inequalities():
    # DOC accepts only a top score strictly above its class's threshold; max-softmax rejects only strictly below.
    logits = np.array([[2.0, -1.0, 0.0]])
    top_sigmoid = 1 / (1 + np.exp(-2.0))
    at = {"method": "doc", "thresholds": np.array([top_sigmoid, 0.5, 0.5]), "label": "UNK"}
    assert out_of_scope_decisions(logits, at)[0].tolist() == doc_predict(logits, at["thresholds"]).tolist() == [3]
    top_softmax = float(softmax(logits).max())
    at = {"method": "max_softmax", "threshold": top_softmax, "label": "UNK"}
    assert out_of_scope_decisions(logits, at)[0].tolist() == [0]


@pytest.mark.parametrize("method", ["doc", "max_softmax"])
def test_the_evaluator_exposes_the_detector_it_fitted_as_the_pipeline_reads_it(method):
    from contextlib import nullcontext
    from types import SimpleNamespace

    from dyken_hyena.evaluation import IntentEvaluator

    evaluator = IntentEvaluator(SimpleNamespace(main_process_first=nullcontext), LABELS, method)
    assert evaluator.fitted_ood_detector() is None  # nothing fitted yet
    rng = np.random.default_rng(1)
    train_logits, train_labels = rng.standard_normal((40, 5)) * 3, rng.integers(0, 5, size=40)
    validation_logits, validation_labels = rng.standard_normal((30, 5)) * 3, rng.integers(0, 6, size=30)
    evaluator.fit_ood_detector(train_logits, train_labels, validation_logits, validation_labels)
    detector = json.loads(json.dumps(evaluator.fitted_ood_detector()))  # as config.json holds it
    if method == "doc":
        assert detector == {"method": "doc", "label": "UNK",
                            "thresholds": doc_fit_thresholds(train_logits, train_labels).tolist()}
    else:
        threshold = max_softmax_fit_threshold(validation_logits, validation_labels)
        assert detector == {"method": "max_softmax", "label": "UNK", "threshold": threshold}
    read = read_out_of_scope_detector(_config(5, detector))
    np.testing.assert_array_equal(out_of_scope_decisions(validation_logits, read)[0],
                                  evaluator.open_set_predictions(validation_logits)[0])


@pytest.mark.parametrize(
    "detector, message",
    [
        ({"method": "odin", "label": "UNK"}, r" must be a dict whose 'method' is one of \('doc', 'max_softmax'\)"),
        ({"method": "doc", "thresholds": [0.5, 0.5], "label": "UNK"}, r"\['thresholds'\] must hold 3 finite numbers"),
        ({"method": "max_softmax", "threshold": "high", "label": "UNK"}, r"\['threshold'\] must be a number"),
        ({"method": "max_softmax", "threshold": 0.4}, r"\['label'\] must name the out-of-scope class"),
    ],
)
def test_a_malformed_saved_detector_is_refused_naming_the_field(detector, message):
    with pytest.raises(ValueError, match=r"config\.out_of_scope_detector" + message):
        read_out_of_scope_detector(_config(3, detector))


# ------------------------------------------------------------------------------------------------ in-process pipeline


def test_pipeline_gives_the_models_probabilities_alone_and_batched(tiny_parts):
    model, processor = tiny_parts
    classifier = MultimodalIntentRecognitionPipeline(model=model, processor=processor, device="cpu")
    rows = examples()
    probabilities = softmax(model_logits(model, processor, rows))

    single = classifier(rows[0])
    assert single == [{"label": LABELS[int(probabilities[0].argmax())],
                       "score": pytest.approx(probabilities[0].max(), abs=1e-6)}]
    for batch_size in (1, 4):
        batched = classifier(rows, top_k=None, batch_size=batch_size)
        assert len(batched) == len(rows)
        for result, expected in zip(batched, probabilities):
            assert [entry["label"] for entry in result] == [LABELS[i] for i in np.argsort(-expected, kind="stable")]
            np.testing.assert_allclose([entry["score"] for entry in result], np.sort(expected)[::-1], atol=1e-6)
    top_two = classifier(rows[:2], top_k=2, padding="longest")
    assert [len(result) for result in top_two] == [2, 2]
    assert classifier("oh, great idea.")[0]["label"] in LABELS  # a string: text alone


@pytest.mark.parametrize(
    "bad_input, message",
    [
        ({"text": "hi", "audio_feature": np.zeros((3, AUDIO_DIM))}, r"keys \['audio_feature'\] are not understood"),
        ({"audio_features": np.zeros((3, AUDIO_DIM))}, r"input\['text'\] must be the utterance as a string"),
        ({"text": "hi", "audio": np.zeros(1600), "audio_features": np.zeros((3, AUDIO_DIM))},
         "both 'audio' and 'audio_features'"),
        (42, "each input must be a dict"),
    ],
)
def test_bad_inputs_are_refused_naming_the_field(tiny_parts, bad_input, message):
    classifier = MultimodalIntentRecognitionPipeline(model=tiny_parts[0], processor=tiny_parts[1], device="cpu")
    with pytest.raises(ValueError, match=message):
        classifier(bad_input)
    with pytest.raises(ValueError, match="top_k must be a positive int or None"):
        classifier({"text": "hi"}, top_k=0)


def test_saving_through_the_pipeline_names_it_in_the_config_and_a_plain_model_save_does_not(tiny_parts, tmp_path):
    model, processor = tiny_parts
    MultimodalIntentRecognitionPipeline(model=model, processor=processor, device="cpu").save_pretrained(tmp_path / "a")
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["custom_pipelines"] == {TASK: {"impl": "pipeline_dyken.MultimodalIntentRecognitionPipeline",
                                                 "pt": ["AutoModelForSequenceClassification"], "type": "multimodal"}}
    for name in ("pipeline_dyken.py", "processing_dyken.py", "extraction_dyken.py", "modeling_dyken.py",
                 "processor_config.json"):
        assert (tmp_path / "a" / name).is_file(), name
    check_checkpoint(tmp_path / "a")
    # Loaded and saved again as a model alone: the folder lacks the pipeline's code, so its config must not name it.
    DyKenForSequenceClassification.from_pretrained(tmp_path / "a").save_pretrained(tmp_path / "b")
    assert not json.loads((tmp_path / "b" / "config.json").read_text()).get("custom_pipelines")


# ------------------------------------------------------------------ a fresh process, without the package installed

REMOTE_PIPELINE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys
    import numpy as np

    PROJECT = {"configuration_dyken", "modeling_dyken", "processing_dyken", "pipeline_dyken", "extraction_dyken",
               "train_accelerate", "dyken_hyena", "datasets_scripts"}

    class HideProject(importlib.abc.MetaPathFinder):  # as if dyken-hyena were not installed
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in PROJECT:
                raise ModuleNotFoundError(name)

    sys.meta_path.insert(0, HideProject())
    from transformers import pipeline

    checkpoint, inputs_file = sys.argv[1], sys.argv[2]
    saved = np.load(inputs_file)
    rows = []
    for index, text in enumerate(json.loads(saved["texts"].item())):
        row = {"text": text}
        for key in ("audio_features", "video_features"):
            if f"{key}_{index}" in saved:
                row[key] = saved[f"{key}_{index}"]
        rows.append(row)

    classifier = pipeline(model=checkpoint, trust_remote_code=True)  # the task comes from the checkpoint
    results = {
        "class": type(classifier).__name__, "module": type(classifier).__module__, "task": classifier.task,
        "single": classifier(rows[0]),
        "batched": classifier(rows, top_k=None, batch_size=4),
        "top_2": classifier(rows, top_k=2),
        "closed_set": classifier(rows, out_of_scope=False),
    }
    text_classification = pipeline("text-classification", model=checkpoint, trust_remote_code=True)
    results["text_classification"] = [type(text_classification).__name__, text_classification(rows[0]["text"])]
    print("RESULTS", json.dumps(results))
    """
)


def test_saved_checkpoint_runs_as_its_pipeline_in_a_fresh_process_without_the_package(tiny_parts, tmp_path):
    model, processor = tiny_parts
    rows = examples(seed=1)
    logits = model_logits(model, processor, rows)
    # DOC thresholds at the median top score: about half the utterances are out of scope.
    thresholds = np.full(len(LABELS), np.median(1 / (1 + np.exp(-logits.max(-1)))))
    expected = doc_predict(logits, thresholds)
    assert 0 < (expected == len(LABELS)).sum() < len(rows)
    model.config.out_of_scope_detector = {"method": "doc", "thresholds": thresholds.tolist(), "label": "UNK"}
    try:
        MultimodalIntentRecognitionPipeline(model=model, processor=processor, device="cpu").save_pretrained(
            tmp_path / "checkpoint")
    finally:
        del model.config.out_of_scope_detector
    arrays = {"texts": np.array(json.dumps([row["text"] for row in rows]))}
    for index, row in enumerate(rows):
        arrays.update({f"{key}_{index}": row[key] for key in ("audio_features", "video_features") if key in row})
    np.savez(tmp_path / "inputs.npz", **arrays)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf_home"), PYTHONPATH="", OMP_NUM_THREADS="1")
    process = subprocess.run(
        [sys.executable, "-c", REMOTE_PIPELINE_SCRIPT, str(tmp_path / "checkpoint"), str(tmp_path / "inputs.npz")],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )
    assert process.returncode == 0, process.stderr[-3000:]
    results = json.loads(process.stdout.split("RESULTS ", 1)[1])
    assert (results["class"], results["task"]) == ("MultimodalIntentRecognitionPipeline", TASK)
    assert results["module"].startswith("transformers_modules")  # the checkpoint's copy, not an installed module

    probabilities = softmax(logits)
    oos_scores = doc_oos_scores(logits)
    for index, (result, closed) in enumerate(zip(results["batched"], results["closed_set"])):
        ranking = [LABELS[i] for i in np.argsort(-probabilities[index], kind="stable")]
        intents = [entry for entry in result if entry["label"] != "UNK"]
        assert [entry["label"] for entry in intents] == ranking
        np.testing.assert_allclose([entry["score"] for entry in intents], np.sort(probabilities[index])[::-1],
                                   atol=1e-6)
        if expected[index] == len(LABELS):  # rejected: UNK first, with DOC's out-of-scope score
            assert result[0]["label"] == "UNK" and result[0]["score"] == pytest.approx(oos_scores[index], abs=1e-6)
            assert len(result) == len(LABELS) + 1
        else:
            assert result[0]["label"] == LABELS[expected[index]] and len(result) == len(LABELS)
        assert [entry["label"] for entry in closed] == ranking[:1]  # out_of_scope=False: the closed-set answer
        assert_same_results(results["top_2"][index], result[:2])  # (batch of 1: the same to float rounding)
    assert_same_results(results["single"], results["batched"][0][:1])

    # The text-classification pipeline runs the model on the text alone: it says so.
    assert results["text_classification"][0] == "TextClassificationPipeline"
    assert "got neither audio_features nor video_features" in process.stderr
    assert "pipeline(model=..., trust_remote_code=True)" in process.stderr


# ----------------------------------------------------------------------------------------- what the trainer saves


@pytest.fixture(scope="module")
def trained_open_set_checkpoint(tmp_path_factory, tokenizer):
    """The trainer's best checkpoint of a tiny MIntRec2.0 job with out-of-scope detection (DOC)."""
    root = tmp_path_factory.mktemp("open_set")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(root / "tiny-bert")
    tokenizer.save_pretrained(root / "tiny-bert")
    release = write_synthetic_release(root / "mintrec2", "MIntRec2.0", num_train=60, num_dev=30, num_test=30,
                                      num_ood_train=16, num_ood_dev=8, num_ood_test=12, length_scale=0.1)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(root / "hf-datasets"), "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    env.pop("ACCELERATE_USE_CPU", None)
    process = subprocess.run(
        [sys.executable, str(REPO_ROOT / "train_accelerate.py"), "--dataset", str(release), "--text_model",
         str(root / "tiny-bert"), "--output_dir", str(root / "out"), "--preset", "mintrec2", "--fusion", "dyken",
         "--max_train_steps", "4", "--checkpointing_steps", "no", "--per_device_train_batch_size", "8",
         "--learning_rate", "1e-3", "--report_to", "none"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert process.returncode == 0, process.stderr[-4000:]
    return root / "out", release, root / "hf-datasets"


def test_trainer_saves_the_pipeline_and_the_fitted_doc_thresholds(trained_open_set_checkpoint):
    from datasets_scripts import load_mintrec

    output_dir, release, datasets_cache = trained_open_set_checkpoint
    checkpoint = output_dir / "dyken" / "best_checkpoint"
    check_checkpoint(checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["custom_pipelines"][TASK]["impl"] == "pipeline_dyken.MultimodalIntentRecognitionPipeline"
    assert (checkpoint / "pipeline_dyken.py").is_file() and (checkpoint / "extraction_dyken.py").is_file()
    processor_config = json.loads((checkpoint / "processor_config.json").read_text())
    assert processor_config["audio_feature_model"] == "microsoft/wavlm-base-plus"
    assert processor_config["video_feature_model"] is None  # MIntRec2.0's Swin features are not made from clips

    detector = config["out_of_scope_detector"]
    assert detector["method"] == "doc" and detector["label"] == "UNK" and len(detector["thresholds"]) == 30
    run = json.loads((output_dir / "dyken" / "seed_0" / "run_result.json").read_text())
    assert run["details"]["out_of_scope_detector"] == detector
    # The thresholds are DOC's fit on the saved model's training logits, as the official code fits them.
    model = DyKenForSequenceClassification.from_pretrained(checkpoint).eval()
    processor = DyKenProcessor.from_pretrained(checkpoint)
    data = load_mintrec(release, "MIntRec2.0", include_out_of_scope=True, cache_dir=str(datasets_cache))
    data = data.with_format("numpy")
    train = [data["train"][index] for index in range(len(data["train"]))]
    np.testing.assert_allclose(detector["thresholds"], doc_fit_thresholds(model_logits(model, processor, train),
                                                                          [row["label"] for row in train]), atol=1e-6)

    # The pipeline answers by doc_predict on the model's logits, in- and out-of-scope test utterances alike.
    rows = [{key: data["test"][index][key] for key in ("text", "audio_features", "video_features")}
            for index in range(len(data["test"]))]
    expected = doc_predict(model_logits(model, processor, rows), detector["thresholds"])
    # (The checkpoint's copy of the code runs in a fresh process above; here the installed classes load it.)
    classifier = MultimodalIntentRecognitionPipeline(model=model, processor=processor, device="cpu")
    labels = [result[0]["label"] for result in classifier(rows, batch_size=8)]
    assert labels == ["UNK" if label == 30 else config["id2label"][str(label)] for label in expected]


# ------------------------------------------------------------------------------------ raw clips (needs the clip venv)


def write_clip(path: Path, seconds=0.6, fps=5, size=(48, 64), sample_rate=16000, with_audio=True):
    """A short MP4 (H.264 + AAC) of moving noise and a tone, written with PyAV."""
    import av

    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[1], size[0], "yuv420p"
        audio = container.add_stream("aac", rate=sample_rate, layout="mono") if with_audio else None
        for _ in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8), format="rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if audio is not None:
            samples = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(seconds * sample_rate)) / sample_rate))
            frame = av.AudioFrame.from_ndarray(samples.astype(np.float32)[None], format="fltp", layout="mono")
            frame.sample_rate = sample_rate
            container.mux(audio.encode(frame))
            container.mux(audio.encode())
    return path


@pytest.fixture(scope="module")
def clip_extractors():
    """Randomly initialised extractors (nothing downloaded): a small wav2vec 2.0 with 768-d states, a Faster R-CNN."""
    pytest.importorskip("av")
    pytest.importorskip("torchvision")
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    from extraction_dyken import AudioFeatureExtractor, VideoFeatureExtractor

    torch.manual_seed(0)
    speech_config = Wav2Vec2Config(hidden_size=AUDIO_DIM, num_hidden_layers=1, num_attention_heads=4,
                                   intermediate_size=64, conv_dim=(32,) * 7, num_conv_pos_embeddings=16,
                                   num_conv_pos_embedding_groups=4)
    audio = AudioFeatureExtractor(model=Wav2Vec2Model(speech_config), feature_extractor=Wav2Vec2FeatureExtractor(),
                                  device="cpu")
    video = VideoFeatureExtractor(weights=None, device="cpu", min_size=64, max_size=96)
    return audio, video


def test_a_clip_gives_the_features_its_extractors_make(tiny_parts, clip_extractors, tmp_path):
    from extraction_dyken import read_clip

    model, processor = tiny_parts
    audio_extractor, video_extractor = clip_extractors
    clip_path = write_clip(tmp_path / "clip.mp4")
    classifier = MultimodalIntentRecognitionPipeline(model=model, processor=processor, device="cpu",
                                                     audio_extractor=audio_extractor, video_extractor=video_extractor)
    from_clip = classifier({"text": "oh, great idea.", "video": str(clip_path)}, top_k=None)

    clip = read_clip(clip_path)
    features = {"text": "oh, great idea.", "audio_features": audio_extractor([clip.waveform])[0],
                "video_features": video_extractor(clip.frames)[0]}
    assert features["video_features"].shape == (3, 1, VIDEO_DIM)  # one vector per frame
    from_features = classifier(features, top_k=None)
    assert [entry["label"] for entry in from_clip] == [entry["label"] for entry in from_features]
    np.testing.assert_allclose([e["score"] for e in from_clip], [e["score"] for e in from_features], atol=1e-6)
    # The processor takes the same media under transformers' names: audio= and videos=.
    batch = processor(["oh, great idea."], audio=[clip_path], videos=[clip_path])
    expected = processor(["oh, great idea."], audio_features=[features["audio_features"]],
                         video_features=[features["video_features"]])
    for key in expected:
        torch.testing.assert_close(batch[key], expected[key])


def test_a_checkpoint_without_a_video_extractor_reads_a_clips_sound_only(tiny_parts, clip_extractors, tmp_path, caplog):
    from extraction_dyken import read_clip

    model, processor = tiny_parts
    audio_extractor, _ = clip_extractors
    mintrec2_processor = DyKenProcessor.for_benchmark("MIntRec2.0", processor.tokenizer, max_text_length=16,
                                                      max_audio_length=40, max_video_length=24)
    assert mintrec2_processor.video_feature_model is None
    classifier = MultimodalIntentRecognitionPipeline(model=model, processor=mintrec2_processor, device="cpu",
                                                     audio_extractor=audio_extractor)
    clip_path = write_clip(tmp_path / "clip.mp4")
    from_clip = classifier({"text": "hi", "video": clip_path}, top_k=None)
    assert "video is left out" in caplog.text
    audio_only = classifier({"text": "hi", "audio_features": audio_extractor([read_clip(clip_path).waveform])[0]},
                            top_k=None)
    np.testing.assert_allclose([e["score"] for e in from_clip], [e["score"] for e in audio_only], atol=1e-6)
    with pytest.raises(ValueError, match="names no video_feature_model"):
        mintrec2_processor(["hi"], videos=[clip_path])
