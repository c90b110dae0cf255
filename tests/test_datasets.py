"""Tests of datasets_scripts: builders, errors, restricted unpickling, Parquet conversion.

Releases come from datasets_scripts.synthetic (official layout, tiny sizes); every expectation is
recomputed from the raw files (TSV lines read by plain splitting, pickles via the safe unpickler).
"""

import ast
import importlib
import logging
import os
import pickle
import shutil
from pathlib import Path

import datasets
import numpy as np
import pytest
from numpy._core.multiarray import _reconstruct

import datasets_scripts
from datasets_scripts import (
    MINTREC2_LABELS,
    MINTREC_BINARY_LABELS,
    MINTREC_INTENT_TO_BINARY,
    MINTREC_LABELS,
    MIntRecFormatError,
    MissingReleaseFileError,
    UnsafePickleError,
    load_any,
    load_mintrec,
    resolve_source,
    safe_load_file,
    synthetic,
)
from datasets_scripts.safe_pickle import MAX_ARRAY_ELEMENTS, InvalidArrayError, safe_load
from datasets_scripts.synthetic import write_synthetic_release


SIZES = dict(num_train=8, num_dev=4, num_test=4, seed=0, length_scale=0.1)


@pytest.fixture(scope="module")
def mintrec_release(tmp_path_factory):
    return write_synthetic_release(tmp_path_factory.mktemp("raw"), benchmark="MIntRec", **SIZES)


@pytest.fixture(scope="module")
def mintrec2_release(tmp_path_factory):
    # 70 train rows: more than two Arrow writer batches (32 rows), so the conversion test can cut shards.
    sizes = dict(SIZES, num_train=70)
    return write_synthetic_release(
        tmp_path_factory.mktemp("raw2"), benchmark="MIntRec2.0", num_ood_train=3, num_ood_dev=2, num_ood_test=3, **sizes
    )


@pytest.fixture
def release_copy(mintrec_release, tmp_path):
    """A private, editable copy of the MIntRec release."""
    return shutil.copytree(mintrec_release, tmp_path / "MIntRec")


def read_rows(tsv):
    with open(tsv, encoding="utf-8") as file:
        return [line.rstrip("\n").split("\t") for line in file]


def write_rows(tsv, rows):
    with open(tsv, "w", encoding="utf-8") as file:
        file.writelines("\t".join(row) + "\n" for row in rows)


def edit_pickle(path, edit):
    features = safe_load_file(path)
    edit(features)
    with open(path, "wb") as file:
        pickle.dump(features, file)


def load_error(data_dir, cache_dir, error_type=MIntRecFormatError, **kwargs):
    with pytest.raises(error_type) as info:
        load_mintrec(data_dir, cache_dir=str(cache_dir), **kwargs)
    return str(info.value)


# ------------------------------------------------------------------------------------------------
# Builders
# ------------------------------------------------------------------------------------------------


def test_mintrec_intent_matches_raw_release(mintrec_release, tmp_path):
    dataset = load_mintrec(mintrec_release, cache_dir=str(tmp_path))
    assert list(dataset) == ["train", "validation", "test"]
    assert dataset["train"].features == datasets.Features(
        {
            "id": datasets.Value("string"),
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=MINTREC_LABELS),
            "season": datasets.Value("string"),
            "episode": datasets.Value("string"),
            "clip": datasets.Value("string"),
            "audio_features": datasets.Array2D(shape=(None, 768), dtype="float32"),
            "video_features": datasets.Array2D(shape=(None, 256), dtype="float32"),
        }
    )
    audio = safe_load_file(mintrec_release / "audio_data" / "audio_feats.pkl")
    video = safe_load_file(mintrec_release / "video_data" / "video_feats.pkl")
    for split, tsv in [("train", "train"), ("validation", "dev"), ("test", "test")]:
        header, *rows = read_rows(mintrec_release / f"{tsv}.tsv")
        assert header == ["season", "episode", "clip", "text", "label"]
        examples = dataset[split].with_format("numpy")
        assert len(examples) == len(rows) == SIZES[f"num_{tsv}"]
        for example, (season, episode, clip, text, label) in zip(examples, rows):
            sample_id = f"{season}_{episode}_{clip}"
            assert example["id"] == sample_id
            assert (example["season"], example["episode"], example["clip"]) == (season, episode, clip)
            assert example["text"] == text
            assert MINTREC_LABELS[example["label"]] == label
            np.testing.assert_array_equal(example["audio_features"], audio[sample_id])
            # The release stores video as a list of (1, 256) key-frame arrays: squeezed to (T, 256).
            assert isinstance(video[sample_id], list) and video[sample_id][0].shape == (1, 256)
            assert example["video_features"].shape == (len(video[sample_id]), 256)
            np.testing.assert_array_equal(example["video_features"], np.concatenate(video[sample_id]))
            assert example["audio_features"].dtype == np.float32


def test_mintrec_binary_task(mintrec_release, tmp_path):
    dataset = load_mintrec(mintrec_release, task="binary", cache_dir=str(tmp_path))
    features = dataset["train"].features
    assert features["label"].names == MINTREC_BINARY_LABELS == ["Emotion", "Goal"]
    assert features["intent"].names == MINTREC_LABELS
    assert sorted(MINTREC_INTENT_TO_BINARY) == sorted(MINTREC_LABELS)
    assert [i for i, name in enumerate(MINTREC_LABELS) if MINTREC_INTENT_TO_BINARY[name] == "Goal"] == [
        10, 12, 13, 14, 15, 16, 17, 18, 19
    ]  # Comfort + Inform ... Ask for help (official binary_maps)
    _, *rows = read_rows(mintrec_release / "train.tsv")
    assert [MINTREC_LABELS[i] for i in dataset["train"]["intent"]] == [row[4] for row in rows]
    assert [MINTREC_BINARY_LABELS[i] for i in dataset["train"]["label"]] == [MINTREC_INTENT_TO_BINARY[r[4]] for r in rows]


def test_mintrec2_in_scope(mintrec2_release, tmp_path):
    dataset = load_mintrec(mintrec2_release, benchmark="MIntRec2.0", cache_dir=str(tmp_path))
    assert list(dataset) == ["train", "validation", "test"]
    features = dataset["train"].features
    assert features["label"].names == MINTREC2_LABELS and len(MINTREC2_LABELS) == 30
    assert list(features) == ["id", "text", "label", "Dialogue_id", "Utterance_id", "Start_timestamp",
                              "End_timestamp", "Source", "speakername", "audio_features", "video_features"]  # fmt: skip
    video = safe_load_file(mintrec2_release / "in-scope" / "video_data" / "swin_roi_binary.pkl")
    header, *rows = read_rows(mintrec2_release / "in-scope" / "test.tsv")
    examples = dataset["test"].with_format("numpy")
    assert len(examples) == len(rows)
    for example, row in zip(examples, rows):
        fields = dict(zip(header, row))
        sample_id = f"dia{fields['Dialogue_id']}_utt{fields['Utterance_id']}"
        assert example["id"] == sample_id
        assert example["speakername"] == fields["speakername"] and example["Start_timestamp"] == fields["Start_timestamp"]
        assert MINTREC2_LABELS[example["label"]] == fields["Label"]
        assert video[sample_id].ndim == 3  # stored as (T, 1, 256)
        np.testing.assert_array_equal(example["video_features"], video[sample_id][:, 0, :])


def test_mintrec2_with_out_of_scope(mintrec2_release, tmp_path):
    dataset = load_mintrec(mintrec2_release, benchmark="MIntRec2.0", include_out_of_scope=True, cache_dir=str(tmp_path))
    assert list(dataset) == ["train", "validation", "test", "ood_train", "ood_validation"]
    names = dataset["train"].features["label"].names
    assert names == MINTREC2_LABELS + ["UNK"] and names.index("UNK") == 30
    ood = mintrec2_release / "out-of-scope" / "MIntRec2.0-OOD"
    in_test = read_rows(mintrec2_release / "in-scope" / "test.tsv")[1:]
    ood_test = read_rows(ood / "test.tsv")[1:]
    expected_ids = [f"dia{row[0]}_utt{row[1]}" for row in in_test + ood_test]
    assert dataset["test"]["id"] == expected_ids  # in-scope test rows, then out-of-scope test rows
    assert list(dataset["test"]["label"]) == [names.index(row[3]) for row in in_test] + [30] * len(ood_test)
    for split, tsv in [("ood_train", "train"), ("ood_validation", "dev")]:
        rows = read_rows(ood / f"{tsv}.tsv")[1:]
        assert dataset[split]["id"] == [f"dia{row[0]}_utt{row[1]}" for row in rows]
        assert set(dataset[split]["label"]) == {30}
    # Out-of-scope video is stored as (T, 256) in this release: read as is.
    ood_video = safe_load_file(ood / "video_data" / "swin_roi_binary.pkl")
    last = dataset["test"].with_format("numpy")[-1]
    np.testing.assert_array_equal(last["video_features"], ood_video[last["id"]])


def test_texts_with_quotes_and_non_ascii_round_trip(release_copy, tmp_path):
    tricky = [
        '"quoted at the start," she said, "and at the end"',
        "it's the naïve café's crème brûlée, zoë — 100% «sure»",
        'a lone " quote and a trailing one"',
        "commas, commas; and 'single quotes'",
    ]
    header, *rows = read_rows(release_copy / "train.tsv")
    for row, text in zip(rows, tricky):
        row[3] = text
    write_rows(release_copy / "train.tsv", [header, *rows])
    dataset = load_mintrec(release_copy, cache_dir=str(tmp_path / "cache"))
    assert dataset["train"]["text"][: len(tricky)] == tricky


def test_cache_is_refreshed_when_the_release_changes(release_copy, tmp_path):
    load_mintrec(release_copy, cache_dir=str(tmp_path / "cache"))
    header, *rows = read_rows(release_copy / "dev.tsv")
    rows[0][3] = "an edited sentence."
    write_rows(release_copy / "dev.tsv", [header, *rows])
    assert load_mintrec(release_copy, cache_dir=str(tmp_path / "cache"))["validation"][0]["text"] == "an edited sentence."


def test_cache_sees_a_same_size_edit_with_restored_mtime(release_copy, tmp_path):
    """`cp -p` / `rsync -t` / os.utime keep size and mtime: the cache must still notice the new content."""
    first = load_mintrec(release_copy, cache_dir=str(tmp_path / "cache"))
    tsv, audio_pickle = release_copy / "dev.tsv", release_copy / "audio_data" / "audio_feats.pkl"
    stamps = {path: os.stat(path) for path in (tsv, audio_pickle)}

    header, *rows = read_rows(tsv)
    rows[0][3] = "x" * len(rows[0][3].encode())  # as many bytes as the old text
    write_rows(tsv, [header, *rows])
    sample_id = first["train"][0]["id"]
    original = safe_load_file(audio_pickle)[sample_id]
    edited = original + 1  # same dtype and shape: the raw bytes are replaced in place
    data = audio_pickle.read_bytes()
    assert data.count(original.tobytes()) == 1
    audio_pickle.write_bytes(data.replace(original.tobytes(), edited.tobytes()))
    for path, stat in stamps.items():
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        assert (os.stat(path).st_size, os.stat(path).st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)

    again = load_mintrec(release_copy, cache_dir=str(tmp_path / "cache"))
    assert again["validation"][0]["text"] == rows[0][3] != first["validation"][0]["text"]
    np.testing.assert_array_equal(again["train"].with_format("numpy")[0]["audio_features"], edited)


# ------------------------------------------------------------------------------------------------
# Errors name the file and the line or sample id
# ------------------------------------------------------------------------------------------------


def test_missing_file_shows_expected_layout(release_copy, tmp_path):
    os.remove(release_copy / "audio_data" / "audio_feats.pkl")
    message = load_error(release_copy, tmp_path / "cache", MissingReleaseFileError)
    assert str(release_copy / "audio_data" / "audio_feats.pkl") in message
    assert "video_data/video_feats.pkl" in message and "train.tsv  dev.tsv  test.tsv" in message


def test_missing_out_of_scope_folder(mintrec2_release, tmp_path):
    copy = shutil.copytree(mintrec2_release, tmp_path / "MIntRec2.0")
    shutil.rmtree(copy / "out-of-scope")
    load_mintrec(copy, benchmark="MIntRec2.0", cache_dir=str(tmp_path / "cache"))  # in-scope only: fine
    message = load_error(copy, tmp_path / "cache", MissingReleaseFileError, benchmark="MIntRec2.0",
                         include_out_of_scope=True)  # fmt: skip
    assert "out-of-scope/MIntRec2.0-OOD/train.tsv" in message and "wavlm_feats_binary.pkl" in message


def test_wrong_number_of_columns(release_copy, tmp_path):
    header, *rows = read_rows(release_copy / "train.tsv")
    rows[2] = rows[2][:4]  # label column lost
    write_rows(release_copy / "train.tsv", [header, *rows])
    message = load_error(release_copy, tmp_path / "cache")
    assert f"{release_copy / 'train.tsv'}, line 4" in message  # header is line 1
    assert "expected 5 tab-separated columns" in message and "got 4" in message


def test_wrong_header(release_copy, tmp_path):
    header, *rows = read_rows(release_copy / "test.tsv")
    write_rows(release_copy / "test.tsv", [["Season", *header[1:]], *rows])
    message = load_error(release_copy, tmp_path / "cache")
    assert f"{release_copy / 'test.tsv'}, line 1" in message and "'Season'" in message


def test_tsv_that_is_not_utf8_names_file_and_line(release_copy, tmp_path):
    header, *rows = read_rows(release_copy / "test.tsv")
    rows[1][3] = "a caf\u00e9 in Latin-1"
    lines = ["\t".join(row) + "\n" for row in [header, *rows]]
    (release_copy / "test.tsv").write_bytes(b"".join(line.encode("latin-1") for line in lines))
    message = load_error(release_copy, tmp_path / "cache")
    # line 3 = second data row; "a caf" is 5 bytes after the 3 id columns and their tabs
    column = len("\t".join(rows[1][:3])) + 1 + len("a caf") + 1
    assert f"{release_copy / 'test.tsv'}, line 3: byte {column} of the line (0xe9) is not valid UTF-8" in message
    assert "re-save the file as UTF-8" in message


@pytest.mark.parametrize("after_header", ["", "\n\n"], ids=["header_only", "header_and_blank_lines"])
def test_tsv_without_rows_names_the_file(release_copy, tmp_path, after_header):
    header = read_rows(release_copy / "test.tsv")[0]
    (release_copy / "test.tsv").write_text("\t".join(header) + "\n" + after_header, encoding="utf-8")
    message = load_error(release_copy, tmp_path / "cache")
    assert f"{release_copy / 'test.tsv'}: only the header line, no data rows" in message


def test_split_whose_rows_are_all_skipped_is_an_error(release_copy, tmp_path):
    header, *rows = read_rows(release_copy / "dev.tsv")
    for row in rows:
        row[4] = "Sarcasm"
    write_rows(release_copy / "dev.tsv", [header, *rows])
    message = load_error(release_copy, tmp_path / "cache", skip_bad_rows=True)
    assert f"split 'validation': all {len(rows)} rows of {release_copy / 'dev.tsv'} were skipped" in message
    assert "'Sarcasm'" in message


def test_unknown_label_lists_known_labels(release_copy, tmp_path):
    header, *rows = read_rows(release_copy / "dev.tsv")
    rows[1][4] = "Sarcasm"
    write_rows(release_copy / "dev.tsv", [header, *rows])
    message = load_error(release_copy, tmp_path / "cache")
    sample_id = "_".join(rows[1][:3])
    assert f"{release_copy / 'dev.tsv'}, line 3 (sample {sample_id})" in message
    assert "'Sarcasm'" in message and "Ask for help" in message and "Complain" in message


def test_sample_missing_from_pickle(release_copy, tmp_path):
    header, *rows = read_rows(release_copy / "train.tsv")
    rows.append(["S09", "E99", "999", "a clip nobody extracted.", "Inform"])
    write_rows(release_copy / "train.tsv", [header, *rows])
    message = load_error(release_copy, tmp_path / "cache")
    assert "'S09_E99_999'" in message and str(release_copy / "audio_data" / "audio_feats.pkl") in message


@pytest.mark.parametrize(
    "bad_value, expected",
    [
        (np.zeros((5, 512), np.float32), "shape (5, 512); expected (T, 768)"),
        (np.zeros(768, np.float32), "shape (768,); expected (T, 768)"),
        (np.zeros((5, 2, 768), np.float32), "shape (5, 2, 768)"),
    ],
)
def test_wrong_feature_shape(release_copy, tmp_path, bad_value, expected):
    sample_id = "_".join(read_rows(release_copy / "test.tsv")[2][:3])
    edit_pickle(release_copy / "audio_data" / "audio_feats.pkl", lambda features: features.update({sample_id: bad_value}))
    message = load_error(release_copy, tmp_path / "cache")
    assert f"audio features of sample {sample_id!r}" in message and expected in message


def test_ragged_video_frames(release_copy, tmp_path):
    sample_id = "_".join(read_rows(release_copy / "train.tsv")[1][:3])
    frames = [np.zeros((1, 256), np.float32), np.zeros((1, 128), np.float32)]
    edit_pickle(release_copy / "video_data" / "video_feats.pkl", lambda features: features.update({sample_id: frames}))
    message = load_error(release_copy, tmp_path / "cache")
    assert f"video features of sample {sample_id!r}" in message and "(1, 128)" in message


def test_empty_text(release_copy, tmp_path):
    header, *rows = read_rows(release_copy / "train.tsv")
    rows[0][3] = "  "
    write_rows(release_copy / "train.tsv", [header, *rows])
    message = load_error(release_copy, tmp_path / "cache")
    assert f"line 2 (sample {'_'.join(rows[0][:3])}): empty text" in message


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_features(release_copy, tmp_path, bad):
    sample_id = "_".join(read_rows(release_copy / "dev.tsv")[1][:3])

    def poison(features):
        features[sample_id] = features[sample_id].copy()
        features[sample_id][3, 7] = bad

    edit_pickle(release_copy / "audio_data" / "audio_feats.pkl", poison)
    message = load_error(release_copy, tmp_path / "cache")
    assert f"sample {sample_id!r}" in message and "1 NaN/inf values (first in frame 3" in message


def test_duplicate_sample_id(release_copy, tmp_path):
    header, *rows = read_rows(release_copy / "test.tsv")
    train_row = read_rows(release_copy / "train.tsv")[1]
    write_rows(release_copy / "test.tsv", [header, *rows, train_row])
    message = load_error(release_copy, tmp_path / "cache")
    assert "duplicate sample id" in message and f"first seen at {release_copy / 'train.tsv'}, line 2" in message


def test_skip_bad_rows_reports_what_was_skipped(release_copy, tmp_path, caplog):
    header, *rows = read_rows(release_copy / "train.tsv")
    rows[1][4] = "Sarcasm"
    bad_feature_id = "_".join(rows[5][:3])
    write_rows(release_copy / "train.tsv", [header, *rows])
    edit_pickle(release_copy / "video_data" / "video_feats.pkl", lambda features: features.update({bad_feature_id: []}))

    with caplog.at_level(logging.WARNING, logger="datasets_scripts"):
        dataset = load_mintrec(release_copy, cache_dir=str(tmp_path / "cache"), skip_bad_rows=True)
    skipped = dataset.skipped_rows
    assert [(row["split"], row["line"], row["id"]) for row in skipped] == [
        ("train", 3, "_".join(rows[1][:3])),
        ("train", 7, bad_feature_id),
    ]
    assert "Sarcasm" in skipped[0]["reason"] and "0 frames" in skipped[1]["reason"]
    assert len(dataset["train"]) == len(rows) - 2 and bad_feature_id not in dataset["train"]["id"]
    assert "Skipped 2 bad row(s)" in caplog.text and bad_feature_id in caplog.text

    # The record survives a cached reload (no regeneration).
    again = load_mintrec(release_copy, cache_dir=str(tmp_path / "cache"), skip_bad_rows=True)
    assert again.skipped_rows == skipped
    # Without skip_bad_rows nothing is dropped: the first bad row raises.
    assert "Sarcasm" in load_error(release_copy, tmp_path / "cache")


# ------------------------------------------------------------------------------------------------
# Restricted unpickling
# ------------------------------------------------------------------------------------------------


class _RunsShellCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_safe_pickle_refuses_code_execution(tmp_path):
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pkl"
    with open(evil, "wb") as file:
        pickle.dump({"S01_E01_1": _RunsShellCommand(f"touch {marker}")}, file)
    with open(evil, "rb") as file:
        assert b"system" in file.read()  # the payload is really there
    with pytest.raises(UnsafePickleError) as info:
        safe_load_file(evil)
    assert not marker.exists()
    assert str(evil) in str(info.value) and f"{os.system.__module__}.system" in str(info.value)

    for callable_ in (eval, __import__("subprocess").check_call):
        with pytest.raises(UnsafePickleError, match=callable_.__name__):
            safe_load(__import__("io").BytesIO(pickle.dumps(_Reducer(callable_, ("1",)))), source="x.pkl")


class _Reducer:
    """Pickles as `callable_(*args)`, followed by a BUILD of `state` when given."""

    def __init__(self, callable_, args, state=None):
        self.callable_, self.args, self.state = callable_, args, state

    def __reduce__(self):
        return (self.callable_, self.args) if self.state is None else (self.callable_, self.args, self.state)


def test_malicious_release_pickle_is_refused_by_the_builder(release_copy, tmp_path):
    marker = tmp_path / "MARKER"
    with open(release_copy / "video_data" / "video_feats.pkl", "wb") as file:
        pickle.dump({"x": _RunsShellCommand(f"touch {marker}")}, file)
    message = load_error(release_copy, tmp_path / "cache", UnsafePickleError)
    assert not marker.exists() and "video_feats.pkl" in message and "system" in message


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_safe_pickle_round_trips_numpy_and_containers(tmp_path, protocol):
    import torch

    rng = np.random.default_rng(0)
    payload = {
        "dia0_utt0": rng.standard_normal((7, 768)).astype(np.float32),
        "S05_E16_329": [rng.standard_normal((1, 256)).astype(np.float32) for _ in range(3)],
        "nested": {"float64": rng.standard_normal((2, 3)), "ints": np.arange(4), "tuple": (1, "a", None)},
        "scalars": [np.float32(1.5), np.int64(-3), 2.5, True],
        "set": {1, 2}, "bytes": b"\x00\xff",
        "torch": torch.arange(6, dtype=torch.float32).reshape(2, 3),  # MIntRec audio was saved as CPU tensors
    }  # fmt: skip
    path = tmp_path / "features.pkl"
    with open(path, "wb") as file:
        pickle.dump(payload, file, protocol=protocol)
    loaded = safe_load_file(path)
    np.testing.assert_array_equal(loaded["dia0_utt0"], payload["dia0_utt0"])
    assert loaded["dia0_utt0"].dtype == np.float32
    for got, expected in zip(loaded["S05_E16_329"], payload["S05_E16_329"]):
        np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(loaded["nested"]["float64"], payload["nested"]["float64"])
    np.testing.assert_array_equal(loaded["nested"]["ints"], payload["nested"]["ints"])
    assert loaded["nested"]["tuple"] == (1, "a", None)
    assert loaded["scalars"] == payload["scalars"] and type(loaded["scalars"][0]) is np.float32
    assert loaded["set"] == {1, 2} and loaded["bytes"] == b"\x00\xff"
    np.testing.assert_array_equal(loaded["torch"], np.arange(6, dtype=np.float32).reshape(2, 3))


def _tensor_pickle(storage_elements, offset, size, stride, storage=None):
    """Pickles as torch's own rebuild of a float32 tensor, with the given layout over a storage of
    `storage_elements` elements holding 0, 1, 2, ... (or over `storage`)."""
    import torch

    rebuild, (own_storage, _, _, _, *rest) = torch.arange(storage_elements, dtype=torch.float32).__reduce_ex__(2)
    return _Reducer(rebuild, (own_storage if storage is None else storage, offset, size, stride, *rest))


def _storage_bytes(elements):
    """The bytes `torch.storage._load_from_bytes` receives for a float32 storage holding 0, 1, 2, ..."""
    import torch

    storage = torch.arange(elements, dtype=torch.float32).__reduce_ex__(2)[1][0]
    return storage.__reduce__()[1][0]


def _pickle_file(tmp_path, features):
    path = tmp_path / "audio_feats.pkl"
    with open(path, "wb") as file:
        pickle.dump(features, file, protocol=4)
    return path


def _load_refused(path, **kwargs):
    with pytest.raises(InvalidArrayError) as info:
        safe_load_file(path, **kwargs)
    return str(info.value)


@pytest.mark.parametrize(
    "storage_elements, offset, size, stride, needed",
    [
        (16, 0, (9, 768), (768, 1), 6912),  # 16 floats behind a (9, 768) tensor
        (6912, 1, (9, 768), (768, 1), 6913),  # offset: one element past the end
        (6912, 0, (9, 768), (769, 1), 6920),  # stride
    ],
    ids=["size", "offset", "stride"],
)
def test_tensor_reaching_past_its_storage_is_refused(tmp_path, storage_elements, offset, size, stride, needed):
    # A view that fits is read exactly: rows 1..8 of a (9, 768) storage.
    fits = safe_load_file(_pickle_file(tmp_path, {"S05_E16_328": _tensor_pickle(6912, 768, (8, 768), (768, 1))}))
    np.testing.assert_array_equal(fits["S05_E16_328"], np.arange(768, 6912, dtype=np.float32).reshape(8, 768))

    bad = _tensor_pickle(storage_elements, offset, size, stride)
    path = _pickle_file(tmp_path, {"S05_E16_328": np.zeros((2, 768), np.float32), "S05_E16_329": bad})
    message = _load_refused(path)
    assert message.startswith(f"{path}, sample S05_E16_329: tensor of size {size}")
    assert f"needs {needed} elements but its storage holds {storage_elements}" in message


def test_tensor_with_a_negative_stride_is_refused(tmp_path):
    path = _pickle_file(tmp_path, {"dia0_utt0": _tensor_pickle(6912, 6144, (9, 768), (-768, 1))})
    assert f"{path}, sample dia0_utt0: tensor of size (9, 768) has stride (-768, 1)" in _load_refused(path)


@pytest.mark.parametrize(
    "storage_elements, size, stride, elements",
    [
        (16, (2**20, 2**20), (2**20, 1), "1,099,511,627,776"),  # 4 TiB of float32
        (1, (10**9,), (0,), "1,000,000,000"),  # fits its storage (stride 0), but 10^9 elements to copy later
    ],
    ids=["dense", "stride_0"],
)
def test_huge_tensor_fails_fast_without_allocating(tmp_path, storage_elements, size, stride, elements):
    path = _pickle_file(tmp_path, {"S05_E16_329": _tensor_pickle(storage_elements, 0, size, stride)})
    message = _load_refused(path)  # refused by the element count, before torch is asked for anything
    assert f"{path}, sample S05_E16_329: tensor of shape {size} has {elements} elements" in message
    assert f"more than the {MAX_ARRAY_ELEMENTS:,} allowed for one array (max_array_elements)" in message


def test_tensor_storage_is_checked_before_torch_allocates_it(tmp_path):
    import torch.storage

    blob = _storage_bytes(16)
    count_of_16 = b"X\x03\x00\x00\x00cpuq\x03K\x10"  # ... "cpu", 16 (BININT1) in torch's storage record
    assert blob.count(count_of_16) == 1
    claims_255 = blob.replace(count_of_16, count_of_16[:-1] + b"\xff")
    storage = _Reducer(torch.storage._load_from_bytes, (claims_255,))
    path = _pickle_file(tmp_path, {"S05_E16_329": _tensor_pickle(16, 0, (16,), (1,), storage=storage)})
    message = _load_refused(path)
    assert message.startswith(f"{path}, sample S05_E16_329: tensor storage declares 255 torch.float32 elements")
    assert f"(1,020 bytes) but holds {len(claims_255)} bytes in all" in message

    path = _pickle_file(tmp_path, {"dia0_utt0": _tensor_pickle(100, 0, (10,), (1,))})
    message = _load_refused(path, max_array_elements=50)
    assert message.startswith(f"{path}, sample dia0_utt0: tensor storage of torch.float32 has 100 elements")
    assert "more than the 50 allowed" in message
    assert safe_load_file(path, max_array_elements=100)["dia0_utt0"].tolist() == list(range(10))


def _numpy_array_pickle(shape, dtype, data, dtype_state=None):
    """Pickles as numpy's own protocol 0-4 rebuild of an array, _reconstruct + BUILD (1, shape, dtype, False,
    data), with the dtype's state replaced when given."""
    dtype = np.dtype(dtype)
    dtype_pickle = _Reducer(np.dtype, dtype.__reduce__()[1], dtype_state or dtype.__reduce__()[2])
    return _Reducer(_reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype_pickle, False, data))


@pytest.mark.parametrize(
    "array, expected",
    [
        # numpy reads 3 objects from a 1-item list: past its end
        (_numpy_array_pickle((3,), object, [1]),
         "numpy array of shape (3,) and dtype object needs a list of 3 elements but its data is a list of 1"),
        # flags 63 = "elements are Python objects": numpy would use the float bytes as pointers
        (_numpy_array_pickle((2,), np.float32, bytes(8), (3, "<", None, None, None, -1, -1, 63)),
         "numpy dtype <f4 has flags 63, which say its elements are Python objects, but numpy gives that type flags 0"),
        # ... and an object dtype whose flags were cleared: numpy would copy raw bytes in as object pointers
        (_numpy_array_pickle((1,), object, bytes(8), (3, "|", None, None, None, -1, -1, 0)),
         "numpy dtype |O has flags 0, which say its elements are not Python objects, but numpy gives that type"),
        (_numpy_array_pickle((10**9,), np.float32, bytes(16)),
         "numpy array of shape (1000000000,) has 1,000,000,000 elements, more than the"),
        (_numpy_array_pickle((9, 768), np.float32, bytes(64)),
         "numpy array of shape (9, 768) and dtype float32 needs 27648 bytes but its data holds 64 bytes"),
        # numpy's pickles always say (0,): another shape would be allocated before any state is checked
        (_Reducer(_reconstruct, (np.ndarray, (10**6,), b"b")),
         "numpy _reconstruct(numpy.ndarray, (1000000,), b'b'): expected (numpy.ndarray, (0,), type code)"),
    ],  # fmt: skip
    ids=["short_object_list", "forged_object_flags", "cleared_object_flags", "huge_shape", "short_data",
         "reconstruct_shape"],
)
def test_inconsistent_numpy_array_is_refused(tmp_path, array, expected):
    path = _pickle_file(tmp_path, {"S05_E16_328": np.arange(3.0), "S05_E16_329": array})
    message = _load_refused(path)
    assert message.startswith(f"{path}, sample S05_E16_329: ") and expected in message


@pytest.mark.parametrize(
    "value, expected",
    [
        (_Reducer(bytes, (10**13,)), "bytes(10000000000000,) has 10,000,000,000,000 elements"),
        (_Reducer(list, (_Reducer(range, (10**13,)),)), "range(10000000000000,) has 10,000,000,000,000 elements"),
    ],
    ids=["bytes", "list_of_range"],
)
def test_builtin_asked_for_a_huge_size_is_refused(tmp_path, value, expected):
    path = _pickle_file(tmp_path, {"S05_E16_329": value})
    message = _load_refused(path)
    assert message.startswith(f"{path}: {expected}") and "max_array_elements" in message


def test_bad_tensor_in_a_release_names_the_pickle_and_the_sample(release_copy, tmp_path):
    sample_id = "_".join(read_rows(release_copy / "dev.tsv")[2][:3])
    audio_pickle = release_copy / "audio_data" / "audio_feats.pkl"
    bad = _tensor_pickle(16, 0, (9, 768), (768, 1))
    edit_pickle(audio_pickle, lambda features: features.update({sample_id: bad}))
    message = load_error(release_copy, tmp_path / "cache", InvalidArrayError)
    assert message.startswith(f"{audio_pickle}, sample {sample_id}: tensor of size (9, 768)")
    assert "needs 6912 elements but its storage holds 16" in message


def test_corrupted_size_in_a_pickle_names_the_file(tmp_path):
    # BINBYTES8 (opcode 0x8e) announcing 2**60 bytes: the unpickler tries to allocate them (MemoryError).
    path = tmp_path / "video_feats.pkl"
    path.write_bytes(b"\x80\x04}\x94\x8c\x0bS05_E16_329\x8e" + (2**60).to_bytes(8, "little") + b"\x00" * 64)
    with pytest.raises(pickle.UnpicklingError) as info:
        safe_load_file(path)
    assert str(info.value).startswith(f"Could not unpickle {path}: ")


def test_truncated_tensor_storage_names_the_file_and_the_sample(tmp_path):
    import torch.storage

    storage = _Reducer(torch.storage._load_from_bytes, (_storage_bytes(16)[:-8],))  # the last 2 floats cut off
    path = _pickle_file(tmp_path, {"S05_E16_329": _tensor_pickle(16, 0, (16,), (1,), storage=storage)})
    message = _load_refused(path)
    assert message.startswith(f"{path}, sample S05_E16_329: could not rebuild an array (RuntimeError: ")


# ------------------------------------------------------------------------------------------------
# Parquet conversion, dataset card, load_any
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted_mintrec2(mintrec2_release, tmp_path_factory):
    from datasets_scripts.__main__ import main

    out_dir = tmp_path_factory.mktemp("parquet") / "mintrec2-parquet"
    argv = ["convert", str(mintrec2_release), str(out_dir), "--benchmark", "MIntRec2.0", "--include_out_of_scope",
            "--max_shard_size", "1MB"]  # fmt: skip
    assert main(argv) == 0
    return out_dir


def test_parquet_round_trip_restores_exact_features(converted_mintrec2, mintrec2_release, tmp_path):
    reference = load_mintrec(mintrec2_release, "MIntRec2.0", include_out_of_scope=True, cache_dir=str(tmp_path / "a"))
    shards = sorted(path.name for path in (converted_mintrec2 / "data").glob("*.parquet"))
    train_shards = [name for name in shards if name.startswith("train-")]
    assert len(train_shards) >= 2  # 1MB shards (cut after a 32-row writer batch): the split was really sharded
    assert train_shards == [f"train-{i:05d}-of-{len(train_shards):05d}.parquet" for i in range(len(train_shards))]
    assert sorted(path.name for path in converted_mintrec2.iterdir()) == ["README.md", "data"]  # staging removed

    reloaded = datasets.load_dataset(str(converted_mintrec2), cache_dir=str(tmp_path / "b"))
    assert list(reloaded) == list(reference)
    for split in reference:
        assert reloaded[split].features == reference[split].features
        assert reloaded[split].features["label"].names[30] == "UNK"
        assert reloaded[split]["id"] == reference[split]["id"]
        assert reloaded[split]["text"] == reference[split]["text"]
        assert list(reloaded[split]["label"]) == list(reference[split]["label"])
        for got, expected in zip(reloaded[split].with_format("numpy"), reference[split].with_format("numpy")):
            np.testing.assert_array_equal(got["audio_features"], expected["audio_features"])
            np.testing.assert_array_equal(got["video_features"], expected["video_features"])


def test_dataset_card_metadata(converted_mintrec2, mintrec2_release):
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(converted_mintrec2 / "README.md")
    assert card.data.license == "cc-by-nc-sa-4.0"
    assert card.data.task_categories == ["text-classification"]
    assert [entry["split"] for entry in card.data.configs[0]["data_files"]] == [
        "train", "validation", "test", "ood_train", "ood_validation"
    ]  # fmt: skip
    # The YAML alone (what the Hub reads) restores the exact features.
    info = DatasetInfosDict.from_dataset_card_data(card.data)["default"]
    assert info.features["label"] == datasets.ClassLabel(names=MINTREC2_LABELS + ["UNK"])
    assert info.features["audio_features"] == datasets.Array2D(shape=(None, 768), dtype="float32")
    assert info.splits["ood_train"].num_examples == 3
    assert "ICLR" in card.text or "International Conference on Learning Representations" in card.text
    assert "@inproceedings{MIntRec" in card.text and "CC BY-NC-SA 4.0" in card.text


def test_convert_refuses_to_mix_with_existing_shards(converted_mintrec2, mintrec2_release):
    from datasets_scripts.convert import convert_to_parquet

    with pytest.raises(FileExistsError, match="overwrite"):
        convert_to_parquet(mintrec2_release, converted_mintrec2, benchmark="MIntRec2.0")


def test_load_any_sources(mintrec_release, converted_mintrec2, tmp_path, monkeypatch):
    raw = load_any(str(mintrec_release), cache_dir=str(tmp_path / "a"))  # layout detected
    named = load_any("mintrec", data_dir=mintrec_release, cache_dir=str(tmp_path / "a"))
    resolved = load_any(resolve_source(mintrec_release), cache_dir=str(tmp_path / "a"))
    assert raw["test"]["id"] == named["test"]["id"] == resolved["test"]["id"]
    parquet = load_any(str(converted_mintrec2), cache_dir=str(tmp_path / "b"))
    assert parquet["ood_validation"].features["label"].names[-1] == "UNK"
    with pytest.raises(ValueError, match="data_dir"):
        load_any("mintrec2")
    with pytest.raises(ValueError, match="MIntRec2.0"):
        load_any(str(mintrec_release), benchmark="MIntRec2.0")
    with pytest.raises(FileNotFoundError):
        load_any(str(tmp_path / "no" / "such" / "folder"))
    with pytest.raises(ValueError, match="pass them to resolve_source"):
        load_any(resolve_source(mintrec_release), benchmark="MIntRec")

    # "synthetic": the built-in release of the benchmark, written into the release cache on first use.
    monkeypatch.setenv("DYKEN_CACHE", str(tmp_path / "releases"))
    monkeypatch.setitem(synthetic.DEFAULT_RELEASE_PARAMS, "MIntRec", dict(SIZES, num_train=5))
    built_in = load_any("synthetic", cache_dir=str(tmp_path / "c"))
    assert len(built_in["train"]) == 5 and built_in["train"].features["label"].names == MINTREC_LABELS
    assert [path.parent for path in (tmp_path / "releases").glob("*/synthetic_metadata.json")] == [
        resolve_source("synthetic").release_dir
    ]


def test_resolve_source_tells_every_kind_of_source_apart(mintrec_release, mintrec2_release, converted_mintrec2,
                                                         tmp_path, monkeypatch):  # fmt: skip
    monkeypatch.setenv("DYKEN_CACHE", str(tmp_path / "releases"))
    monkeypatch.setitem(synthetic.DEFAULT_RELEASE_PARAMS, "MIntRec", dict(SIZES))
    monkeypatch.setitem(synthetic.DEFAULT_RELEASE_PARAMS, "MIntRec2.0",
                        dict(SIZES, num_ood_train=2, num_ood_dev=2, num_ood_test=2))  # fmt: skip
    real = shutil.copytree(mintrec_release, tmp_path / "MIntRec")  # the official layout, not generated
    (real / "synthetic_metadata.json").unlink()

    def described(*args, **kwargs):
        source = resolve_source(*args, **kwargs)
        return source.kind, source.location, source.benchmark, source.release_dir, source.is_synthetic

    built_in_mintrec2 = resolve_source("synthetic", benchmark="MIntRec2.0").release_dir
    assert built_in_mintrec2.parent == tmp_path / "releases"
    assert (built_in_mintrec2 / "out-of-scope" / "MIntRec2.0-OOD" / "train.tsv").is_file()
    assert described("synthetic", benchmark="mintrec2") == (
        "release", built_in_mintrec2, "MIntRec2.0", built_in_mintrec2, True
    )  # fmt: skip
    mine = tmp_path / "mine"
    assert described("synthetic", data_dir=mine) == ("release", mine, "MIntRec", mine, True)
    assert (mine / "train.tsv").is_file()
    assert described("mintrec", data_dir=real) == ("release", real, "MIntRec", real, False)
    assert described("MIntRec2", data_dir=mintrec2_release) == (
        "release", mintrec2_release, "MIntRec2.0", mintrec2_release, True
    )  # fmt: skip
    assert described(str(real)) == ("release", real, "MIntRec", real, False)
    assert described(mintrec2_release, benchmark="MIntRec2.0") == (
        "release", mintrec2_release, "MIntRec2.0", mintrec2_release, True
    )  # fmt: skip
    # A Parquet folder or Hub dataset: the benchmark is only known when given (else from the labels, once loaded).
    assert described(str(converted_mintrec2)) == ("parquet", converted_mintrec2, None, None, False)
    assert described(str(converted_mintrec2), benchmark="mintrec2")[2] == "MIntRec2.0"
    assert described("someone/mintrec") == ("hub", "someone/mintrec", None, None, False)

    # Bad input: a clear error, and nothing written over.
    before = {path: path.read_bytes() for path in real.rglob("*") if path.is_file()}
    with pytest.raises(FileExistsError, match="is not empty and holds no synthetic release"):
        resolve_source("synthetic", data_dir=real)
    assert {path: path.read_bytes() for path in real.rglob("*") if path.is_file()} == before
    with pytest.raises(ValueError, match="pass data_dir=<folder>, laid out as"):
        resolve_source("mintrec2")
    with pytest.raises(ValueError, match=r"'mintrec' is the MIntRec release, but benchmark='MIntRec2.0'"):
        resolve_source("mintrec", data_dir=real, benchmark="MIntRec2.0")
    with pytest.raises(ValueError, match=r"laid out as a MIntRec2.0 release, but benchmark='MIntRec'"):
        resolve_source(str(mintrec2_release), benchmark="MIntRec")
    with pytest.raises(FileNotFoundError, match=f"data_dir {tmp_path / 'MintRec'} is not a folder"):
        resolve_source("mintrec", data_dir=tmp_path / "MintRec")
    with pytest.raises(ValueError, match="leave data_dir out"):
        resolve_source(str(real), data_dir=real)
    (tmp_path / "notes").mkdir()
    with pytest.raises(ValueError, match="neither an official release folder nor a Parquet dataset folder"):
        resolve_source(str(tmp_path / "notes"))
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        resolve_source("./no/such/folder")
    with pytest.raises(ValueError, match="Unknown benchmark 'MIntRec3'"):
        resolve_source("synthetic", benchmark="MIntRec3")


def _imported_package_modules(path, package_modules):
    """Modules of datasets_scripts that the source file `path` imports, anywhere in it (also inside functions).
    A name imported from the package itself (`from . import load_any`) is an import of `__init__`."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1:
                module_path = node.module.split(".") if node.module else []
            elif node.level == 0 and node.module and node.module.split(".")[0] == "datasets_scripts":
                module_path = node.module.split(".")[1:]
            else:
                continue
            if module_path:
                imported.add(module_path[0])
            else:
                imported |= {alias.name if alias.name in package_modules else "__init__" for alias in node.names}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "datasets_scripts":
                    imported.add(parts[1] if len(parts) > 1 else "__init__")
    return imported


def test_datasets_scripts_modules_import_without_a_cycle():
    package_dir = Path(datasets_scripts.__file__).parent
    package_modules = {path.stem for path in package_dir.glob("*.py")}
    graph = {
        module: _imported_package_modules(package_dir / f"{module}.py", package_modules) for module in package_modules
    }
    for module in sorted(package_modules - {"__init__"}):
        importlib.import_module(f"datasets_scripts.{module}")

    def find_cycle(module, path):
        if module in path:
            return path[path.index(module):] + [module]
        for imported in sorted(graph.get(module, ())):
            cycle = find_cycle(imported, path + [module])
            if cycle:
                return cycle
        return None

    for module in sorted(graph):
        cycle = find_cycle(module, [])
        assert cycle is None, f"import cycle in datasets_scripts: {' -> '.join(cycle)}"
