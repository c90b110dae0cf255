"""Synthetic releases: official layout/formats, determinism, and the controllable non-verbal cue."""

import csv
import filecmp
import json
import re

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from datasets_scripts.safe_pickle import safe_load_file
from datasets_scripts.synthetic import (
    DEFAULT_RELEASE_PARAMS,
    NONVERBAL_INTENTS,
    NONVERBAL_PAIRS,
    ensure_default_release,
    write_synthetic_release,
)


# The official index orders, as the MIntRec and MIntRec2.0 repositories publish them, written out independently.
DOC_MINTREC_LABELS = [
    "Complain", "Praise", "Apologise", "Thank", "Criticize", "Agree", "Taunt", "Flaunt", "Joke", "Oppose",
    "Comfort", "Care", "Inform", "Advise", "Arrange", "Introduce", "Leave", "Prevent", "Greet", "Ask for help",
]
DOC_MINTREC2_LABELS = [
    "Acknowledge", "Advise", "Agree", "Apologise", "Arrange", "Ask for help", "Asking for opinions", "Care",
    "Comfort", "Complain", "Confirm", "Criticize", "Doubt", "Emphasize", "Explain", "Flaunt", "Greet", "Inform",
    "Introduce", "Invite", "Joke", "Leave", "Oppose", "Plan", "Praise", "Prevent", "Refuse", "Taunt", "Thank", "Warn",
]
MINTREC_HEADER = ["season", "episode", "clip", "text", "label"]
MINTREC2_HEADER = ["Dialogue_id", "Utterance_id", "Text", "Label", "Start_timestamp", "End_timestamp", "Source",
                   "speakername"]
SPLITS = ("train", "dev", "test")
# Small, short clips: ~1 s to write. Big enough (50 train / 30 test clips per intent) for the probes below.
PROBE_RELEASE = dict(num_train=1000, num_dev=20, num_test=600, length_scale=0.3, seed=3)


def read_tsv(path):
    with open(path, encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file, delimiter="\t"))
    return rows[0], rows[1:]


@pytest.fixture(scope="module")
def cued_release(tmp_path_factory):
    return write_synthetic_release(tmp_path_factory.mktemp("cued"), "MIntRec", nonverbal_signal=3.0, **PROBE_RELEASE)


@pytest.fixture(scope="module")
def uncued_release(tmp_path_factory):
    return write_synthetic_release(tmp_path_factory.mktemp("uncued"), "MIntRec", nonverbal_signal=0.0, **PROBE_RELEASE)


@pytest.fixture(scope="module")
def mintrec2_release(tmp_path_factory):
    return write_synthetic_release(
        tmp_path_factory.mktemp("m2"), "MIntRec2.0", num_train=120, num_dev=40, num_test=60,
        num_ood_train=50, num_ood_dev=20, num_ood_test=30, length_scale=0.2,
    )


def load_release(release_dir):
    """{split: [(sample_id, text, label)]}, audio dict, video dict (restricted unpickler)."""
    rows = {}
    for split in SPLITS:
        _, body = read_tsv(release_dir / f"{split}.tsv")
        rows[split] = [("_".join(row[:3]), row[3], row[4]) for row in body]
    audio = safe_load_file(release_dir / "audio_data" / "audio_feats.pkl")
    video = safe_load_file(release_dir / "video_data" / "video_feats.pkl")
    return rows, audio, video


def test_mintrec_layout_headers_ids_and_shapes(cued_release):
    rows, audio, video = load_release(cued_release)
    for split, expected_rows in [("train", 1000), ("dev", 20), ("test", 600)]:
        header, body = read_tsv(cued_release / f"{split}.tsv")
        assert header == MINTREC_HEADER
        assert len(body) == expected_rows and all(len(row) == 5 for row in body)
        assert all(re.fullmatch(r"S\d\d", r[0]) and re.fullmatch(r"E\d\d", r[1]) and r[2].isdigit() for r in body)
    ids = [sample_id for split in SPLITS for sample_id, _, _ in rows[split]]
    assert all(re.fullmatch(r"S\d\d_E\d\d_\d+", sample_id) for sample_id in ids)
    assert len(set(ids)) == len(ids) == 1620
    assert set(audio) == set(video) == set(ids)

    # Balanced over the official label set, in every large split.
    for split in ("train", "test"):
        assert sorted({label for _, _, label in rows[split]}) == sorted(DOC_MINTREC_LABELS)
    assert set(NONVERBAL_INTENTS) <= set(DOC_MINTREC_LABELS) & set(DOC_MINTREC2_LABELS)

    max_audio, max_video = round(477 * 0.3), round(225 * 0.3)
    for sample_id in ids:
        assert audio[sample_id].dtype == np.float32 and audio[sample_id].ndim == 2
        assert audio[sample_id].shape[1] == 768 and 4 <= audio[sample_id].shape[0] <= max_audio
        frames = video[sample_id]
        assert isinstance(frames, list) and 4 <= len(frames) <= max_video
        assert all(frame.shape == (1, 256) and frame.dtype == np.float32 for frame in frames[:3])

    # Texts exercise readers: commas, apostrophes, mid-sentence quotes, non-ASCII; a few to ~25 words.
    texts = [text for split in SPLITS for _, text, _ in rows[split]]
    assert any("," in t for t in texts) and any("'" in t for t in texts) and any('"' in t for t in texts)
    assert any(not t.isascii() for t in texts)
    word_counts = [len(t.split()) for t in texts]
    assert min(word_counts) >= 2 and 15 <= max(word_counts) <= 26
    # Written without quoting: a QUOTE_NONE reader sees exactly the same fields.
    with open(cued_release / "train.tsv", encoding="utf-8", newline="") as file:
        assert list(csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE))[1:] == read_tsv(cued_release / "train.tsv")[1]


def test_mintrec2_layout_in_scope_and_out_of_scope(mintrec2_release):
    folders = {"in-scope": mintrec2_release / "in-scope",
               "out-of-scope": mintrec2_release / "out-of-scope" / "MIntRec2.0-OOD"}
    expected_rows = {"in-scope": (120, 40, 60), "out-of-scope": (50, 20, 30)}
    all_ids = []
    for scope, folder in folders.items():
        audio = safe_load_file(folder / "audio_data" / "wavlm_feats_binary.pkl")
        video = safe_load_file(folder / "video_data" / "swin_roi_binary.pkl")
        ids = []
        for split, count in zip(SPLITS, expected_rows[scope]):
            header, body = read_tsv(folder / f"{split}.tsv")
            assert header == MINTREC2_HEADER and len(body) == count
            for dialogue, utterance, text, label, start, end, source, speaker in body:
                assert dialogue.isdigit() and utterance.isdigit() and text and source and speaker
                assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3}", start) and re.fullmatch(r"\d\d:\d\d:\d\d,\d{3}", end)
                assert end > start
                assert (label == "UNK") if scope == "out-of-scope" else (label in DOC_MINTREC2_LABELS)
                ids.append(f"dia{dialogue}_utt{utterance}")
        assert set(audio) == set(video) == set(ids)
        for sample_id in ids:
            assert audio[sample_id].dtype == np.float32 and audio[sample_id].shape[1:] == (768,)
            assert video[sample_id].dtype == np.float32
            # in-scope video is stored (T, 1, 256), out-of-scope (T, 256): readers must squeeze.
            assert video[sample_id].shape[1:] == ((1, 256) if scope == "in-scope" else (256,))
            assert audio[sample_id].shape[0] <= round(400 * 0.2) and video[sample_id].shape[0] <= round(180 * 0.2)
        all_ids += ids
    assert len(all_ids) == len(set(all_ids)), "in-scope and out-of-scope ids must not collide"


def test_same_seed_same_bytes_other_seed_other_data(tmp_path):
    kwargs = dict(benchmark="MIntRec", num_train=40, num_dev=10, num_test=10, length_scale=0.1)
    first = write_synthetic_release(tmp_path / "a", seed=7, **kwargs)
    second = write_synthetic_release(tmp_path / "b", seed=7, **kwargs)
    other = write_synthetic_release(tmp_path / "c", seed=8, **kwargs)
    files = ["train.tsv", "dev.tsv", "test.tsv", "audio_data/audio_feats.pkl", "video_data/video_feats.pkl",
             "synthetic_metadata.json"]
    for name in files:
        assert filecmp.cmp(first / name, second / name, shallow=False), name
    assert not filecmp.cmp(first / "train.tsv", other / "train.tsv", shallow=False)
    assert not filecmp.cmp(first / "audio_data/audio_feats.pkl", other / "audio_data/audio_feats.pkl", shallow=False)


def test_the_cue_is_the_only_difference_between_signal_levels(cued_release, uncued_release):
    rows_cued, audio_cued, video_cued = load_release(cued_release)
    rows_plain, audio_plain, video_plain = load_release(uncued_release)
    assert rows_cued == rows_plain  # same texts, labels, ids
    cues = json.loads((cued_release / "synthetic_metadata.json").read_text(encoding="utf-8"))["cues"]
    pair_of = {label: pair for pair in NONVERBAL_PAIRS for label in (pair.plain, pair.cued)}
    directions = {}  # (pair, modality) -> the one direction all cue rows share
    num_cued = 0
    for sample_id, _, label in rows_cued["train"] + rows_cued["test"]:
        for modality, cued, plain in [("audio", audio_cued, audio_plain), ("video", video_cued, video_plain)]:
            difference = np.asarray(cued[sample_id], np.float64).reshape(len(cued[sample_id]), -1) - np.asarray(
                plain[sample_id], np.float64).reshape(len(plain[sample_id]), -1)
            changed = np.flatnonzero(np.abs(difference).max(axis=1) > 0)
            pair = pair_of.get(label)
            if pair is None or modality not in pair.modalities:
                assert changed.size == 0, (sample_id, modality)
                continue
            if label == pair.cued:
                start, end = cues[sample_id][f"{modality}_segment"]
                assert changed.tolist() == list(range(start, end))  # exactly the cue word's frames
                num_cued += 1
            elif cues[sample_id]["distractor_word_index"] is None:
                assert changed.size == 0
            for row in difference[changed]:  # every changed frame moved by 3 sigma along one direction
                np.testing.assert_allclose(np.linalg.norm(row), 3.0, rtol=1e-4)
                reference = directions.setdefault((pair.cued, modality), row / 3.0)
                np.testing.assert_allclose(row / 3.0, reference, atol=1e-5)
    assert num_cued > 100 and len(directions) == 4  # audio: 2 pairs, video: 2 pairs


def _pair_accuracies(release_dir):
    """Per pair: accuracy of a bag-of-words classifier, of a logistic regression on the cue word's
    frames (mean of the word's frames minus the clip mean), and of one on the clip mean."""
    rows, audio, video = load_release(release_dir)
    cues = json.loads((release_dir / "synthetic_metadata.json").read_text(encoding="utf-8"))["cues"]
    results = {}
    for pair in NONVERBAL_PAIRS:
        train = [row for row in rows["train"] if row[2] in (pair.plain, pair.cued)]
        test = [row for row in rows["test"] if row[2] in (pair.plain, pair.cued)]
        y_train = [label == pair.cued for _, _, label in train]
        y_test = [label == pair.cued for _, _, label in test]
        vectorizer = CountVectorizer()
        text_model = LogisticRegression(max_iter=1000).fit(vectorizer.fit_transform([t for _, t, _ in train]), y_train)
        text_accuracy = text_model.score(vectorizer.transform([t for _, t, _ in test]), y_test)

        modality = pair.modalities[0]
        features = audio if modality == "audio" else video

        def probe_inputs(split_rows, on_cue_word):
            inputs = []
            for sample_id, _, _ in split_rows:
                frames = np.asarray(features[sample_id]).reshape(len(features[sample_id]), -1)
                start, end = cues[sample_id][f"{modality}_segment"]
                inputs.append(frames[start:end].mean(0) - frames.mean(0) if on_cue_word else frames.mean(0))
            return np.stack(inputs)

        accuracies = {"text": text_accuracy}
        for name, on_cue_word in [("cue_word", True), ("clip_mean", False)]:
            model = LogisticRegression(max_iter=2000).fit(probe_inputs(train, on_cue_word), y_train)
            accuracies[name] = model.score(probe_inputs(test, on_cue_word), y_test)
        results[pair.cued] = accuracies
    return results, rows


def test_paired_intents_need_the_nonverbal_cue(cued_release, uncued_release):
    cued, rows = _pair_accuracies(cued_release)
    uncued, _ = _pair_accuracies(uncued_release)
    for name in cued:
        # 60 test clips per pair: chance is 0.5 +- 0.065, so <= 0.7 is "at chance" (3 std).
        assert cued[name]["text"] <= 0.7, (name, cued[name])  # identical text distributions
        assert cued[name]["cue_word"] >= 0.9, (name, cued[name])  # the cue, read on the cue word
        assert cued[name]["clip_mean"] <= cued[name]["cue_word"] - 0.2, (name, cued[name])  # offsets hide it
        assert uncued[name]["cue_word"] <= 0.7, (name, uncued[name])  # signal 0: nothing to find

    # Outside the pairs, text alone is informative but not perfect (generic sentences).
    others = {split: [r for r in rows[split] if r[2] not in NONVERBAL_INTENTS] for split in ("train", "test")}
    vectorizer = CountVectorizer()
    model = LogisticRegression(max_iter=2000).fit(
        vectorizer.fit_transform([t for _, t, _ in others["train"]]), [l for _, _, l in others["train"]])
    accuracy = model.score(vectorizer.transform([t for _, t, _ in others["test"]]), [l for _, _, l in others["test"]])
    assert 0.8 <= accuracy < 0.99


def test_ensure_default_release_writes_once(tmp_path):
    release = ensure_default_release(tmp_path)
    assert release.parent == tmp_path and release.name.startswith("synthetic-")
    stamp = (release / "audio_data" / "audio_feats.pkl").stat().st_mtime_ns
    assert ensure_default_release(tmp_path) == release
    assert (release / "audio_data" / "audio_feats.pkl").stat().st_mtime_ns == stamp  # cached, not rewritten
    assert [p.name for p in tmp_path.iterdir()] == [release.name]  # no staging folder left behind

    rows, audio, video = load_release(release)
    sizes = {split: len(rows[split]) for split in SPLITS}
    assert sizes == {"train": DEFAULT_RELEASE_PARAMS["num_train"], "dev": DEFAULT_RELEASE_PARAMS["num_dev"],
                     "test": DEFAULT_RELEASE_PARAMS["num_test"]}
    assert max(a.shape[0] for a in audio.values()) <= 160 and max(len(v) for v in video.values()) <= 80
    params = json.loads((release / "synthetic_metadata.json").read_text(encoding="utf-8"))["params"]
    assert params["nonverbal_signal"] == DEFAULT_RELEASE_PARAMS["nonverbal_signal"]


def test_rejects_unknown_benchmark(tmp_path):
    with pytest.raises(ValueError, match="MIntRec"):
        write_synthetic_release(tmp_path, "MIntRec3", num_train=2, num_dev=2, num_test=2)
