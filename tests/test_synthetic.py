"""Synthetic releases: official layout/formats, determinism, the controllable non-verbal cue, and
`ensure_release` (the one way to find or write a release: cache, data_dir, parameter checks)."""

import csv
import filecmp
import functools
import json
import os
import re
import shutil

import numpy as np
import pytest
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from datasets_scripts import synthetic
from datasets_scripts.safe_pickle import safe_load_file
from datasets_scripts.synthetic import (
    DEFAULT_RELEASE_PARAMS,
    NONVERBAL_INTENTS,
    NONVERBAL_PAIRS,
    SyntheticReleaseMismatchError,
    ensure_release,
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
        labels = [label for _, _, label in rows[split]]
        assert sorted(set(labels)) == sorted(DOC_MINTREC_LABELS)
        assert max(map(labels.count, set(labels))) - min(map(labels.count, set(labels))) <= 1
    # Exactly the clips of the paired intents carry cue records.
    cues = json.loads((cued_release / "synthetic_metadata.json").read_text(encoding="utf-8"))["cues"]
    pair_clips = {sample_id for split in SPLITS for sample_id, _, label in rows[split] if label in NONVERBAL_INTENTS}
    assert pair_clips == set(cues)

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
        if scope == "in-scope":
            pair_clips = {f"dia{row[0]}_utt{row[1]}" for split in SPLITS
                          for row in read_tsv(folder / f"{split}.tsv")[1] if row[3] in NONVERBAL_INTENTS}
    assert len(all_ids) == len(set(all_ids)), "in-scope and out-of-scope ids must not collide"
    # The paired intents are MIntRec2.0 intents too: their clips, and only theirs, carry cue records.
    cues = json.loads((mintrec2_release / "synthetic_metadata.json").read_text(encoding="utf-8"))["cues"]
    assert set(cues) == pair_clips and {cue["pair"][0] for cue in cues.values()} == {p.plain for p in NONVERBAL_PAIRS}


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


# ---------------------------------------------------------------------------------------------
# ensure_release: the one way to find or write a release
# ---------------------------------------------------------------------------------------------
# Small and short: ~0.1 s to write.
SMALL = dict(num_train=40, num_dev=20, num_test=20, length_scale=0.1)
SMALL_MINTREC2 = dict(num_train=60, num_dev=30, num_test=30, num_ood_train=6, num_ood_dev=4, num_ood_test=5,
                      length_scale=0.1)


def file_hashes(folder):
    """{relative path: bytes} of every file under folder."""
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.mark.parametrize("benchmark, overrides", [("MIntRec", SMALL), ("MIntRec2.0", SMALL_MINTREC2)])
def test_ensure_release_is_the_built_in_release_updated_by_the_overrides(tmp_path, benchmark, overrides):
    release = ensure_release(benchmark, cache_dir=tmp_path / "cache", **overrides)
    parameters = {**DEFAULT_RELEASE_PARAMS[benchmark], **overrides}
    expected = write_synthetic_release(tmp_path / "direct", benchmark, **parameters)
    assert file_hashes(release) == file_hashes(expected)
    if benchmark == "MIntRec2.0":  # the built-in MIntRec2.0 release has out-of-scope data
        _, rows = read_tsv(release / "out-of-scope" / "MIntRec2.0-OOD" / "test.tsv")
        assert len(rows) == 5 and {row[3] for row in rows} == {"UNK"}


def test_built_in_release_is_written_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DYKEN_CACHE", str(tmp_path / "cache"))
    release = ensure_release()
    assert release.parent == tmp_path / "cache"
    stamp = (release / "audio_data" / "audio_feats.pkl").stat().st_mtime_ns
    assert ensure_release("mintrec") == release
    assert (release / "audio_data" / "audio_feats.pkl").stat().st_mtime_ns == stamp  # cached, not rewritten
    assert os.listdir(tmp_path / "cache") == [release.name]  # no staging folder left behind

    # The default job's data: 60 training clips per intent, clips a third of the real length.
    rows, audio, video = load_release(release)
    assert {split: len(rows[split]) for split in SPLITS} == {"train": 1200, "dev": 300, "test": 400}
    assert {[label for _, _, label in rows["train"]].count(name) for name in DOC_MINTREC_LABELS} == {60}
    assert max(a.shape[0] for a in audio.values()) <= 159 and max(len(v) for v in video.values()) <= 75


def test_cache_holds_one_release_per_parameter_set(tmp_path):
    cache = tmp_path / "cache"
    release = ensure_release("MIntRec", cache_dir=cache, **SMALL)
    default_signal = DEFAULT_RELEASE_PARAMS["MIntRec"]["nonverbal_signal"]
    assert ensure_release("MIntRec", cache_dir=cache, **SMALL, nonverbal_signal=int(default_signal)) == release  # 16 == 16.0
    without_cue = ensure_release("MIntRec", cache_dir=cache, **SMALL, nonverbal_signal=0.0)
    other_seed = ensure_release("MIntRec", cache_dir=cache, **SMALL, seed=1)
    assert len({release, without_cue, other_seed}) == 3
    assert sorted(os.listdir(cache)) == sorted(path.name for path in (release, without_cue, other_seed))
    # The twin without the cue holds the same clips: same texts, labels and ids.
    assert (release / "train.tsv").read_bytes() == (without_cue / "train.tsv").read_bytes()
    assert (release / "train.tsv").read_bytes() != (other_seed / "train.tsv").read_bytes()


def test_concurrent_writers_of_one_release_share_the_first_copy(tmp_path, monkeypatch):
    """Another process completes the same release while this one is writing it: the rename into place fails,
    and the other copy is used; the staging folder is removed."""
    cache = tmp_path / "cache"
    real_writer = synthetic.write_synthetic_release
    staging_folders, other_process_release = [], []

    @functools.wraps(real_writer)  # ensure_release reads the generator's parameters from its signature
    def writer_racing_another_process(out_dir, *args, **kwargs):
        staging_folders.append(out_dir)
        if len(staging_folders) == 1:  # this process starts writing; the "other process" completes meanwhile
            other_process_release.append(ensure_release("MIntRec", cache_dir=cache, **SMALL))
        return real_writer(out_dir, *args, **kwargs)

    monkeypatch.setattr(synthetic, "write_synthetic_release", writer_racing_another_process)
    release = ensure_release("MIntRec", cache_dir=cache, **SMALL)
    assert len(staging_folders) == 2 and other_process_release == [release]
    assert os.listdir(cache) == [release.name]
    expected = real_writer(tmp_path / "direct", **{**DEFAULT_RELEASE_PARAMS["MIntRec"], **SMALL})
    assert file_hashes(release) == file_hashes(expected)


def test_data_dir_release_is_used_only_with_the_same_parameters(tmp_path):
    folder = tmp_path / "mine"
    assert ensure_release("MIntRec", data_dir=folder, **SMALL) == folder
    before = file_hashes(folder)
    stamp = (folder / "train.tsv").stat().st_mtime_ns
    assert ensure_release("MIntRec", data_dir=folder, **SMALL) == folder
    assert (folder / "train.tsv").stat().st_mtime_ns == stamp  # used, not rewritten

    with pytest.raises(SyntheticReleaseMismatchError) as info:
        ensure_release("MIntRec", data_dir=folder, **{**SMALL, "num_train": 60, "nonverbal_signal": 0.0})
    message = str(info.value)
    assert str(folder) in message
    assert "sizes.train: 40 in the folder, 60 requested" in message
    assert f"nonverbal_signal: {DEFAULT_RELEASE_PARAMS['MIntRec']['nonverbal_signal']} in the folder, 0.0 requested" in message
    assert "sizes.dev" not in message  # only what differs
    with pytest.raises(FileExistsError, match=r"benchmark: 'MIntRec' in the folder, 'MIntRec2.0' requested"):
        ensure_release("MIntRec2.0", data_dir=folder, **SMALL_MINTREC2)
    assert file_hashes(folder) == before


def test_data_dir_is_written_only_when_missing_empty_or_left_incomplete(tmp_path):
    reference = file_hashes(ensure_release("MIntRec", data_dir=tmp_path / "reference", **SMALL))

    # A real release (the official layout without the generator's metadata) is never written over.
    real = shutil.copytree(tmp_path / "reference", tmp_path / "MIntRec")
    (real / "synthetic_metadata.json").unlink()
    before = file_hashes(real)
    with pytest.raises(FileExistsError) as info:
        ensure_release("MIntRec", data_dir=real, **SMALL)
    assert f"{real} is not empty and holds no synthetic release" in str(info.value)
    assert "found: audio_data, dev.tsv, test.tsv, train.tsv, video_data" in str(info.value)
    assert file_hashes(real) == before
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="is a file, not a folder"):
        ensure_release("MIntRec", data_dir=tmp_path / "notes.txt", **SMALL)
    assert (tmp_path / "notes.txt").read_text() == "mine"

    # The generator's own folders are (re)written: empty, or left incomplete by a killed write.
    empty = tmp_path / "empty"
    empty.mkdir()
    assert file_hashes(ensure_release("MIntRec", data_dir=empty, **SMALL)) == reference
    interrupted = shutil.copytree(tmp_path / "reference", tmp_path / "interrupted")
    (interrupted / "synthetic_metadata.json").unlink()
    (interrupted / "train.tsv").write_text("half written")
    (interrupted / ".synthetic_release_incomplete").touch()
    assert file_hashes(ensure_release("MIntRec", data_dir=interrupted, **SMALL)) == reference


def test_bad_parameters_are_named_before_anything_is_written(tmp_path):
    with pytest.raises(TypeError, match=r"unknown release parameter\(s\) num_trian; the parameters are: num_train"):
        ensure_release("MIntRec", cache_dir=tmp_path / "cache", num_trian=5)
    with pytest.raises(TypeError, match="out_dir"):
        ensure_release("MIntRec", cache_dir=tmp_path / "cache", out_dir=tmp_path / "x")
    with pytest.raises(ValueError, match="expected 'MIntRec' or 'MIntRec2.0'"):
        ensure_release("MIntRec3", cache_dir=tmp_path / "cache")
    for bad, message in [
        (dict(num_dev=0), "num_dev must be a whole number >= 1, got 0"),
        (dict(num_train=2.5), "num_train must be a whole number >= 1, got 2.5"),
        (dict(distractor_rate=1.5), "distractor_rate must be a number >= 0.0 and <= 1.0, got 1.5"),
        (dict(length_scale=0), "length_scale must be a number > 0.0, got 0"),
        (dict(nonverbal_signal=float("nan")), "nonverbal_signal must be a number >= 0.0, got nan"),
        (dict(vary_pair_sentences="no"), "vary_pair_sentences must be True or False, got 'no'"),
    ]:
        with pytest.raises(ValueError, match=re.escape(message)):
            ensure_release("MIntRec", cache_dir=tmp_path / "cache", **bad)
        with pytest.raises(ValueError, match=re.escape(message)):
            write_synthetic_release(tmp_path / "x", "MIntRec", **{**SMALL, **bad})
    with pytest.raises(ValueError, match="MIntRec"):
        write_synthetic_release(tmp_path / "x", "MIntRec3", **SMALL)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "x").exists()
