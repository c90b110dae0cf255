"""`datasets` builders for the MIntRec (ACM MM 2022) and MIntRec2.0 (ICLR 2024) releases.

Both releases are downloaded by hand and read from a local folder (`data_dir`) in the official layout
(see `MINTREC_LAYOUT` / `MINTREC2_LAYOUT`). `datasets>=4` no longer runs loading scripts, so the
builders are plain classes; `load_mintrec` is the entry point (`datasets_scripts.sources.load_any` also
reads Parquet folders, Hub datasets and the built-in synthetic releases).

One example per TSV row:
    id              official sample id, the key into both feature pickles
                    (MIntRec `S05_E16_329` = season_episode_clip, MIntRec2.0 `dia0_utt0`)
    text            the utterance, exactly as in the TSV
    label           ClassLabel with the official names in the official order
    <metadata>      the other TSV columns, as strings
    audio_features  Array2D((None, 768), float32): (T_audio, 768) wav2vec 2.0 / WavLM frames
    video_features  Array2D((None, 256), float32): (T_video, 256) RoI features, squeezed from (T, 1, 256)
Features are stored whole; truncation/padding to the official maxima is the processor's job.

Arrow stores a variable-length Array2D as list<list<float32>>: two int32 offset buffers on top of
the values, i.e. 4 bytes per frame next to 3,072 (audio) or 1,024 (video) bytes of data, so the
storage overhead is below 0.4%.

Memory: a feature pickle is one dict and has to be unpickled whole. Each pickle is loaded once
(streamed from the file, not read into a bytes object first), shared by the splits that need it and
released as soon as the last of them is written; examples are yielded one at a time and the Arrow
writer flushes every `DEFAULT_WRITER_BATCH_SIZE` rows, so the peak is about one copy of the features.
"""

from __future__ import annotations

import codecs
import csv
import ctypes
import dataclasses
import hashlib
import io
import json
import logging
import os
import pickle
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import datasets
import numpy as np
import xxhash
from datasets.exceptions import DatasetGenerationError

from .safe_pickle import safe_load_file


logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------
# Official label sets (MIntRec: thuiar/MIntRec data/__init__.py; MIntRec2.0: thuiar/MIntRec2.0).
# --------------------------------------------------------------------------------------------------

MINTREC_LABELS = [
    "Complain", "Praise", "Apologise", "Thank", "Criticize", "Agree", "Taunt", "Flaunt", "Joke", "Oppose",
    "Comfort", "Care", "Inform", "Advise", "Arrange", "Introduce", "Leave", "Prevent", "Greet", "Ask for help",
]  # fmt: skip
MINTREC_BINARY_LABELS = ["Emotion", "Goal"]
# The coarse MIntRec task: "Express emotions or attitudes" vs "Achieve goals" (official binary_maps).
MINTREC_INTENT_TO_BINARY = {
    **{intent: "Emotion" for intent in ["Complain", "Praise", "Apologise", "Thank", "Criticize", "Care", "Agree",
                                        "Taunt", "Flaunt", "Joke", "Oppose"]},
    **{intent: "Goal" for intent in ["Comfort", "Inform", "Advise", "Arrange", "Introduce", "Leave", "Prevent",
                                     "Greet", "Ask for help"]},
}  # fmt: skip
MINTREC2_LABELS = [
    "Acknowledge", "Advise", "Agree", "Apologise", "Arrange", "Ask for help", "Asking for opinions", "Care",
    "Comfort", "Complain", "Confirm", "Criticize", "Doubt", "Emphasize", "Explain", "Flaunt", "Greet", "Inform",
    "Introduce", "Invite", "Joke", "Leave", "Oppose", "Plan", "Praise", "Prevent", "Refuse", "Taunt", "Thank", "Warn",
]  # fmt: skip
MINTREC2_OOS_LABEL = "UNK"  # label of out-of-scope rows; id 30 when out-of-scope data is included
MINTREC2_LABELS_WITH_OOS = MINTREC2_LABELS + [MINTREC2_OOS_LABEL]

AUDIO_FEATURE_DIM = 768  # wav2vec 2.0 base (MIntRec) / WavLM base+ (MIntRec2.0)
VIDEO_FEATURE_DIM = 256  # Faster R-CNN RoI (MIntRec) / Swin RoI (MIntRec2.0)

MINTREC_METADATA_COLUMNS = ["season", "episode", "clip"]
MINTREC2_METADATA_COLUMNS = ["Dialogue_id", "Utterance_id", "Start_timestamp", "End_timestamp", "Source", "speakername"]

MINTREC_LAYOUT = """\
MIntRec/                          <- data_dir
  train.tsv  dev.tsv  test.tsv    (header: season, episode, clip, text, label; tab-separated)
  video_data/video_feats.pkl
  audio_data/audio_feats.pkl"""

MINTREC2_LAYOUT = """\
MIntRec2.0/                       <- data_dir
  in-scope/
    train.tsv  dev.tsv  test.tsv  (header: Dialogue_id, Utterance_id, Text, Label, Start_timestamp,
                                   End_timestamp, Source, speakername; tab-separated)
    video_data/swin_roi_binary.pkl
    audio_data/wavlm_feats_binary.pkl
  out-of-scope/MIntRec2.0-OOD/    (only needed with include_out_of_scope=True)
    train.tsv  dev.tsv  test.tsv
    video_data/swin_roi_binary.pkl
    audio_data/wavlm_feats_binary.pkl"""

MINTREC_CITATION = """\
@inproceedings{MIntRec,
  author    = {Zhang, Hanlei and Xu, Hua and Wang, Xin and Zhou, Qianrui and Zhao, Shaojie and Teng, Jiayan},
  title     = {MIntRec: A New Dataset for Multimodal Intent Recognition},
  booktitle = {Proceedings of the 30th ACM International Conference on Multimedia},
  pages     = {1688--1697},
  year      = {2022},
  doi       = {10.1145/3503161.3547906}
}"""

MINTREC2_CITATION = """\
@inproceedings{zhang2024mintrec,
  title     = {{MI}ntRec2.0: A Large-scale Benchmark Dataset for Multimodal Intent Recognition and Out-of-scope Detection in Conversations},
  author    = {Hanlei Zhang and Xin Wang and Hua Xu and Qianrui Zhou and Kai Gao and Jianhua Su and Jinyue Zhao and Wenrui Li and Yanting Chen},
  booktitle = {The Twelfth International Conference on Learning Representations},
  year      = {2024},
  url       = {https://openreview.net/forum?id=nY9nITZQjc}
}"""

_LICENSE = "CC BY-NC-SA 4.0 (non-commercial research use; see the official repositories)"
SKIPPED_ROWS_FILENAME = "skipped_rows.json"
# Part of the cache fingerprint: bump when the generated examples change for the same raw files.
_BUILDER_CODE_VERSION = "1"


# --------------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------------


class MIntRecFormatError(ValueError):
    """A release file does not match the official format. The message names the file and the TSV line
    or sample id. `row_level` errors concern one row and can be skipped with `skip_bad_rows=True`."""

    def __init__(self, message: str, file=None, line: Optional[int] = None, sample_id: Optional[str] = None,
                 row_level: bool = True):  # fmt: skip
        super().__init__(message)
        self.file = None if file is None else str(file)
        self.line = line
        self.sample_id = sample_id
        self.row_level = row_level


class MissingReleaseFileError(FileNotFoundError):
    """Files of the official layout are missing from `data_dir`; the message shows the expected tree."""


# --------------------------------------------------------------------------------------------------
# Release layout
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _ReleasePart:
    """One folder of a release: train/dev/test TSVs plus the two pickles that hold their features."""

    name: str  # used in messages: "MIntRec", "in-scope", "out-of-scope"
    folder: Path
    columns: tuple  # the exact TSV header
    text_column: str
    label_column: str
    audio_pickle: Path
    video_pickle: Path
    allowed_labels: tuple  # raw TSV labels accepted in this part

    def tsv(self, split_file: str) -> Path:
        return self.folder / f"{split_file}.tsv"

    def sample_id(self, row: dict) -> str:
        if "season" in row:  # MIntRec: season_episode_clip, e.g. S05_E16_329
            return "_".join([row["season"], row["episode"], row["clip"]])
        return f"dia{row['Dialogue_id']}_utt{row['Utterance_id']}"  # MIntRec2.0, e.g. dia0_utt0

    @property
    def id_columns(self) -> tuple:
        return ("season", "episode", "clip") if "season" in self.columns else ("Dialogue_id", "Utterance_id")


def _mintrec_part(data_dir: Path) -> _ReleasePart:
    return _ReleasePart(
        name="MIntRec",
        folder=data_dir,
        columns=("season", "episode", "clip", "text", "label"),
        text_column="text",
        label_column="label",
        audio_pickle=data_dir / "audio_data" / "audio_feats.pkl",
        video_pickle=data_dir / "video_data" / "video_feats.pkl",
        allowed_labels=tuple(MINTREC_LABELS),
    )


def _mintrec2_part(data_dir: Path, out_of_scope: bool) -> _ReleasePart:
    folder = data_dir / "out-of-scope" / "MIntRec2.0-OOD" if out_of_scope else data_dir / "in-scope"
    return _ReleasePart(
        name="out-of-scope" if out_of_scope else "in-scope",
        folder=folder,
        columns=("Dialogue_id", "Utterance_id", "Text", "Label", "Start_timestamp", "End_timestamp", "Source",
                 "speakername"),  # fmt: skip
        text_column="Text",
        label_column="Label",
        audio_pickle=folder / "audio_data" / "wavlm_feats_binary.pkl",
        video_pickle=folder / "video_data" / "swin_roi_binary.pkl",
        allowed_labels=(MINTREC2_OOS_LABEL,) if out_of_scope else tuple(MINTREC2_LABELS),
    )


# Bytes read at a time when hashing a release file (a feature pickle is up to a few GB).
_HASH_CHUNK_BYTES = 8 << 20


def _file_content_hash(path: str) -> str:
    """xxh3-128 of the file's bytes, read in chunks. xxhash (a dependency of datasets) hashes at several
    GB/s, so reading the file is the cost: see benchmarks/results/data_loading.md."""
    content_hash = xxhash.xxh3_128()
    with open(path, "rb") as file:
        while chunk := file.read(_HASH_CHUNK_BYTES):
            content_hash.update(chunk)
    return content_hash.hexdigest()


def _release_fingerprint(data_dir: Union[str, os.PathLike]) -> str:
    """Hash of the relative path and the content of every TSV/pickle under data_dir, so an edited release gets
    a new cache instead of a stale one, also when the edit keeps the file's size and modification time
    (`cp -p`, `rsync -t`, `os.utime`). Every call reads these files once. Mp4 clips are not read and do
    not count."""
    digest = hashlib.sha256(_BUILDER_CODE_VERSION.encode())
    for root, dirs, files in os.walk(data_dir):
        dirs[:] = sorted(d for d in dirs if d != "raw_data")
        for name in sorted(files):
            if name.endswith((".tsv", ".pkl")):
                path = os.path.join(root, name)
                relative = os.path.relpath(path, data_dir)
                digest.update(f"{relative}\0{_file_content_hash(path)}\n".encode())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Feature pickles
# --------------------------------------------------------------------------------------------------


class _FeaturePickle:
    """A `{sample_id: features}` pickle, loaded (with the restricted unpickler) on first use."""

    def __init__(self, path: Path, modality: str, width: int):
        self.path, self.modality, self.width = path, modality, width
        self._features: Optional[dict] = None

    def _load(self) -> dict:
        if self._features is None:
            logger.info("Loading %s features from %s", self.modality, self.path)
            features = safe_load_file(self.path)
            if not isinstance(features, dict):
                raise MIntRecFormatError(
                    f"{self.path}: expected a pickled dict {{sample_id: features}}, got {type(features).__name__}",
                    file=self.path, row_level=False,
                )  # fmt: skip
            self._features = features
        return self._features

    def matrix(self, sample_id: str, where: str) -> np.ndarray:
        """The (T, width) float32 features of `sample_id`; `where` ("file, line N") locates the row."""
        features = self._load()
        if sample_id not in features:
            raise MIntRecFormatError(
                f"{where}: sample id {sample_id!r} is missing from the {self.modality} feature pickle {self.path} "
                f"({len(features)} ids in the pickle).",
                file=self.path, sample_id=sample_id,
            )  # fmt: skip
        return _as_feature_matrix(features[sample_id], self.width, sample_id, self.modality, self.path, where)


def _as_feature_matrix(
    value: Any, width: int, sample_id: str, modality: str, pickle_path: Path, where: str
) -> np.ndarray:
    """Bring one sample's features to a (T, width) float32 array.

    Accepted: (T, width); (T, 1, width) (squeezed); a list of T frames each (1, width) or (width,)
    (MIntRec video key frames). Rejected with the sample id and the shapes: other ranks/widths, ragged
    frame lists, zero frames, non-numeric data, NaN/inf."""
    context = f"{where}: {modality} features of sample {sample_id!r} in {pickle_path}"
    if isinstance(value, (list, tuple)) and len(value) == 0:
        raise MIntRecFormatError(f"{context} have 0 frames (empty list)", file=pickle_path, sample_id=sample_id)
    try:
        array = np.asarray(value)  # a list of (1, width) frames stacks to (T, 1, width)
    except ValueError as error:  # ragged list of frames
        shapes = sorted({tuple(np.shape(frame)) for frame in value}) if isinstance(value, (list, tuple)) else "?"
        raise MIntRecFormatError(
            f"{context}: frames of different shapes {shapes}; expected (T, {width}) or T frames of (1, {width})",
            file=pickle_path, sample_id=sample_id,
        ) from error  # fmt: skip
    got_shape = array.shape  # a list of T (1, width) frames reports as (T, 1, width)
    if array.ndim == 3 and array.shape[1] == 1:
        array = array[:, 0, :]
    if array.ndim != 2 or array.shape[1] != width:
        raise MIntRecFormatError(
            f"{context} have shape {got_shape}; expected (T, {width}) or (T, 1, {width})",
            file=pickle_path, sample_id=sample_id,
        )  # fmt: skip
    if array.shape[0] == 0:
        raise MIntRecFormatError(f"{context} have 0 frames", file=pickle_path, sample_id=sample_id)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise MIntRecFormatError(
            f"{context} have dtype {array.dtype}; expected a numeric array", file=pickle_path, sample_id=sample_id
        )
    array = array.astype(np.float32, copy=False)
    finite = np.isfinite(array)
    if not finite.all():
        bad_frames = np.flatnonzero(~finite.all(axis=1))
        raise MIntRecFormatError(
            f"{context} contain {int((~finite).sum())} NaN/inf values (first in frame {int(bad_frames[0])} of "
            f"{array.shape[0]}); expected finite values",
            file=pickle_path, sample_id=sample_id,
        )  # fmt: skip
    return array


# --------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class MIntRecConfig(datasets.BuilderConfig):
    """MIntRec configuration.

    Args:
        task: "intent" (20 classes) or "binary" (Emotion vs Goal; the 20-class intent is kept in `intent`).
        skip_bad_rows: skip malformed rows instead of raising (they are logged and listed in `skipped_rows`).
    """

    task: str = "intent"
    skip_bad_rows: bool = False


@dataclasses.dataclass
class MIntRec2Config(datasets.BuilderConfig):
    """MIntRec2.0 configuration.

    Args:
        include_out_of_scope: add the out-of-scope data: label "UNK" (id 30), `test` = in-scope test +
            out-of-scope test, and `ood_train` / `ood_validation` splits (for outlier exposure).
        skip_bad_rows: skip malformed rows instead of raising (they are logged and listed in `skipped_rows`).
    """

    include_out_of_scope: bool = False
    skip_bad_rows: bool = False


_VERSION = datasets.Version("1.0.0")


class _OfficialReleaseBuilder(datasets.GeneratorBasedBuilder):
    """Shared reading, validation and bookkeeping of the MIntRec-family builders."""

    # Rows buffered by the Arrow/Parquet writer before a flush (= one Parquet row group): a MIntRec audio
    # clip is up to 477 x 768 x 4 B = 1.4 MB, so this keeps the buffer under ~50 MB instead of the
    # default 1,000 rows (~1.4 GB).
    DEFAULT_WRITER_BATCH_SIZE = 32
    VERSION = _VERSION
    LAYOUT = ""
    DATASET_NAME = ""

    def __init__(self, *args, hash: Optional[str] = None, **kwargs):
        data_dir = kwargs.get("data_dir")
        if data_dir is not None:
            kwargs["data_dir"] = os.path.abspath(os.fspath(data_dir))
            if hash is None and os.path.isdir(kwargs["data_dir"]):
                hash = _release_fingerprint(kwargs["data_dir"])
        kwargs.setdefault("dataset_name", self.DATASET_NAME)
        super().__init__(*args, hash=hash, **kwargs)
        self.skipped_rows: list[dict] = []
        self._pickles: dict[Path, _FeaturePickle] = {}
        self._pickle_uses: Counter = Counter()
        self._seen_ids: dict = {}

    # ---- to implement in subclasses ---------------------------------------------------------------
    def _split_plan(self, data_dir: Path) -> dict[str, list[tuple[_ReleasePart, str]]]:
        """split name -> [(release part, TSV name without extension), ...] in output order."""
        raise NotImplementedError

    def _label_fields(self, part: _ReleasePart, raw_label: str) -> dict:
        """Example fields derived from the TSV label (at least `label`)."""
        return {"label": raw_label}

    def _metadata_columns(self) -> list[str]:
        raise NotImplementedError

    # ---- datasets.DatasetBuilder API --------------------------------------------------------------
    def download_and_prepare(self, *args, **kwargs):
        """`DatasetBuilder.download_and_prepare`, plus: format errors raised while generating are re-raised
        as themselves (not wrapped in DatasetGenerationError), and `self.skipped_rows` lists the rows
        skipped with `skip_bad_rows=True`, also when the dataset comes from the cache."""
        self.skipped_rows = []
        try:
            super().download_and_prepare(*args, **kwargs)
        except DatasetGenerationError as error:
            cause = error.__cause__
            if isinstance(cause, (MIntRecFormatError, pickle.UnpicklingError, OSError)):
                raise cause.with_traceback(cause.__traceback__) from None
            raise
        record = os.path.join(self._output_dir, SKIPPED_ROWS_FILENAME)
        if os.path.exists(record):
            with open(record, encoding="utf-8") as file:
                self.skipped_rows = json.load(file)
            _warn_skipped(self.skipped_rows, self._output_dir)

    def _split_generators(self, dl_manager):
        if not self.config.data_dir:
            raise ValueError(
                f"{type(self).__name__} reads a local copy of the official release: pass data_dir=<folder>, laid "
                f"out as\n{self.LAYOUT}"
            )  # fmt: skip
        data_dir = Path(self.config.data_dir)
        plan = self._split_plan(data_dir)
        needed = []
        for sources in plan.values():
            for part, split_file in sources:
                needed += [part.tsv(split_file), part.audio_pickle, part.video_pickle]
        missing = sorted({str(path) for path in needed if not path.is_file()})
        if missing:
            raise MissingReleaseFileError(
                f"{self.DATASET_NAME}: {len(missing)} file(s) of the official release are missing:\n  "
                + "\n  ".join(missing)
                + f"\ndata_dir ({data_dir}) must be laid out as:\n{self.LAYOUT}"
            )
        # Count how many (split, part) sources read each pickle, to free it after its last reader.
        self._pickle_uses = Counter(
            path for sources in plan.values() for part, _ in sources for path in (part.audio_pickle, part.video_pickle)
        )
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"split": split, "sources": sources})
            for split, sources in plan.items()
        ]

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        self._pickles, self._seen_ids, self.skipped_rows = {}, {}, []
        try:
            super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
        finally:
            self._pickles = {}  # drop loaded features even when generation failed
            _return_freed_memory_to_os()
        if self.skipped_rows:
            # self._output_dir is the (temporary) cache folder being written; the record ends up next to
            # dataset_info.json so a cached reload can report it too.
            with open(os.path.join(self._output_dir, SKIPPED_ROWS_FILENAME), "w", encoding="utf-8") as file:
                json.dump(self.skipped_rows, file, indent=1, ensure_ascii=False)

    def _generate_examples(self, split: str, sources: list):
        examples = 0
        for part, split_file in sources:
            for key, example in self._generate_part(split, part, split_file):
                examples += 1
                yield key, example
            for path in (part.audio_pickle, part.video_pickle):
                self._pickle_uses[path] -= 1
                if self._pickle_uses[path] <= 0 and self._pickles.pop(path, None) is not None:
                    _return_freed_memory_to_os()  # last reader done: free the features
        if examples == 0:
            # Every row was skipped (skip_bad_rows=True); `datasets` would cache the empty split and then fail
            # with "Instruction ... corresponds to no data".
            skipped = [row for row in self.skipped_rows if row["split"] == split]
            tsvs = ", ".join(str(part.tsv(split_file)) for part, split_file in sources)
            raise MIntRecFormatError(
                f"split {split!r}: all {len(skipped)} rows of {tsvs} were skipped as bad (skip_bad_rows=True), which "
                "leaves no example; expected at least one valid row."
                + (f" First reason: {skipped[0]['reason']}" if skipped else ""),
                row_level=False,
            )  # fmt: skip

    # ---- reading ----------------------------------------------------------------------------------
    def _pickle(self, path: Path, modality: str, width: int) -> _FeaturePickle:
        if path not in self._pickles:
            self._pickles[path] = _FeaturePickle(path, modality, width)
        return self._pickles[path]

    def _generate_part(self, split: str, part: _ReleasePart, split_file: str) -> Iterator[tuple[str, dict]]:
        tsv = part.tsv(split_file)
        audio = self._pickle(part.audio_pickle, "audio", AUDIO_FEATURE_DIM)
        video = self._pickle(part.video_pickle, "video", VIDEO_FEATURE_DIM)
        for line, fields in _read_tsv(tsv, part.columns):
            try:
                example = self._example(part, tsv, line, fields, audio, video)
            except MIntRecFormatError as error:
                if not (self.config.skip_bad_rows and error.row_level):
                    raise
                self.skipped_rows.append(
                    {"split": split, "file": str(tsv), "line": line, "id": error.sample_id, "reason": str(error)}
                )
                continue
            yield f"{part.name}/{example['id']}", example

    def _example(self, part, tsv: Path, line: int, fields: list, audio: _FeaturePickle, video: _FeaturePickle):
        where = f"{tsv}, line {line}"
        if len(fields) != len(part.columns):
            raise MIntRecFormatError(
                f"{where}: expected {len(part.columns)} tab-separated columns {list(part.columns)}, got "
                f"{len(fields)}: {fields!r}",
                file=tsv, line=line,
            )  # fmt: skip
        row = dict(zip(part.columns, fields))
        empty_ids = [column for column in part.id_columns if not row[column].strip()]
        if empty_ids:
            raise MIntRecFormatError(f"{where}: empty id column(s) {empty_ids}", file=tsv, line=line)
        sample_id = part.sample_id(row)
        where = f"{tsv}, line {line} (sample {sample_id})"
        text, raw_label = row[part.text_column], row[part.label_column]
        if not text.strip():
            raise MIntRecFormatError(f"{where}: empty text", file=tsv, line=line, sample_id=sample_id)
        if raw_label not in part.allowed_labels:
            raise MIntRecFormatError(
                f"{where}: unknown label {raw_label!r} in the {part.name} data; known labels: "
                f"{', '.join(part.allowed_labels)}",
                file=tsv, line=line, sample_id=sample_id,
            )  # fmt: skip
        first_seen = self._seen_ids.get((part.name, sample_id))
        if first_seen is not None:
            raise MIntRecFormatError(
                f"{where}: duplicate sample id {sample_id!r}, first seen at {first_seen}",
                file=tsv, line=line, sample_id=sample_id,
            )  # fmt: skip
        self._seen_ids[(part.name, sample_id)] = f"{tsv}, line {line}"
        try:
            audio_features = audio.matrix(sample_id, f"{tsv}, line {line}")
            video_features = video.matrix(sample_id, f"{tsv}, line {line}")
        except MIntRecFormatError as error:
            error.line = line
            raise
        metadata = {column: row[column] for column in self._metadata_columns()}
        return {
            "id": sample_id,
            "text": text,
            **self._label_fields(part, raw_label),
            **metadata,
            "audio_features": audio_features,
            "video_features": video_features,
        }


def _return_freed_memory_to_os() -> None:
    """Give the pages of freed feature pickles back to the OS (best effort, glibc only).

    A pickle's arrays are interleaved on the heap with many small objects (keys, dict entries, MIntRec's
    per-frame (1, 256) arrays), so glibc cannot trim the heap by itself and the process would keep an RSS
    of the whole feature set after the dataset is written, e.g. for a whole training run."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _decode_tsv(path: Path) -> str:
    """The text of a TSV, which must be UTF-8 (a byte-order mark is tolerated and dropped). The whole file is
    decoded at once (an official TSV is at most a few MB) so that an invalid byte can be located by line."""
    data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise MIntRecFormatError(
            f"{path}, line {line}: byte {column} of the line (0x{data[error.start]:02x}) is not valid UTF-8 "
            f"({error.reason}); the official TSVs are UTF-8 text: re-save the file as UTF-8",
            file=path, line=line, row_level=False,
        ) from None  # fmt: skip


def _read_tsv(path: Path, columns: tuple) -> Iterator[tuple[int, list]]:
    """(line number, fields) for each data row of an official TSV.

    QUOTE_NONE: the official files are not CSV-quoted; a text such as `he said "no"` is stored verbatim,
    so quotes must stay literal characters (the official loaders read texts with quotechar=None too).
    Blank lines are not rows and are passed over; a TSV without any row is an error (every official TSV
    has rows, and `datasets` cannot build an empty split)."""
    # newline="": lines end where `open(path, newline="")` would end them, so line numbers match the file.
    reader = csv.reader(io.StringIO(_decode_tsv(path), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(reader, None)
    if header != list(columns):
        raise MIntRecFormatError(
            f"{path}, line 1: expected the header {list(columns)} (tab-separated), got {header!r}",
            file=path, line=1, row_level=False,
        )  # fmt: skip
    rows = 0
    for fields in reader:
        if fields:
            rows += 1
            yield reader.line_num, fields
    if rows == 0:
        raise MIntRecFormatError(
            f"{path}: only the header line, no data rows; expected one tab-separated row per clip after the header",
            file=path, row_level=False,
        )  # fmt: skip


def _warn_skipped(skipped_rows: list[dict], cache_folder: str) -> None:
    listing = "\n".join(f"  [{row['split']}] {row['reason']}" for row in skipped_rows)  # reasons name file + line
    logger.warning(
        "Skipped %d bad row(s) (skip_bad_rows=True; record: %s):\n%s",
        len(skipped_rows), os.path.join(cache_folder, SKIPPED_ROWS_FILENAME), listing,
    )  # fmt: skip


def _array_features() -> dict:
    return {
        "audio_features": datasets.Array2D(shape=(None, AUDIO_FEATURE_DIM), dtype="float32"),
        "video_features": datasets.Array2D(shape=(None, VIDEO_FEATURE_DIM), dtype="float32"),
    }


class MIntRecBuilder(_OfficialReleaseBuilder):
    """MIntRec (2,224 clips from Superstore, 20 intents). Splits: train / validation / test
    (train.tsv / dev.tsv / test.tsv). Configs: "intent" (20 classes) and "binary" (Emotion / Goal)."""

    BUILDER_CONFIG_CLASS = MIntRecConfig
    BUILDER_CONFIGS = [
        MIntRecConfig(name="intent", version=_VERSION, task="intent", description="20 fine-grained intents"),
        MIntRecConfig(name="binary", version=_VERSION, task="binary", description="2 coarse intents: Emotion vs Goal"),
    ]
    DEFAULT_CONFIG_NAME = "intent"
    LAYOUT = MINTREC_LAYOUT
    DATASET_NAME = "mintrec"

    def _info(self):
        if self.config.task not in ("intent", "binary"):
            raise ValueError(f"MIntRec task must be 'intent' or 'binary', got {self.config.task!r}")
        label_names = MINTREC_LABELS if self.config.task == "intent" else MINTREC_BINARY_LABELS
        features = {"id": datasets.Value("string"), "text": datasets.Value("string"),
                    "label": datasets.ClassLabel(names=label_names)}  # fmt: skip
        if self.config.task == "binary":
            features["intent"] = datasets.ClassLabel(names=MINTREC_LABELS)
        features.update({column: datasets.Value("string") for column in MINTREC_METADATA_COLUMNS})
        features.update(_array_features())
        return datasets.DatasetInfo(
            description="MIntRec: multimodal intent recognition (text, wav2vec 2.0 audio, RoI video features).",
            features=datasets.Features(features),
            homepage="https://github.com/thuiar/MIntRec",
            citation=MINTREC_CITATION,
            license=_LICENSE,
        )

    def _split_plan(self, data_dir):
        part = _mintrec_part(data_dir)
        return {"train": [(part, "train")], "validation": [(part, "dev")], "test": [(part, "test")]}

    def _metadata_columns(self):
        return MINTREC_METADATA_COLUMNS

    def _label_fields(self, part, raw_label):
        if self.config.task == "binary":
            return {"label": MINTREC_INTENT_TO_BINARY[raw_label], "intent": raw_label}
        return {"label": raw_label}


class MIntRec2Builder(_OfficialReleaseBuilder):
    """MIntRec2.0 (30 intents + out-of-scope, multi-party dialogues), single-turn samples.
    Configs: "in_scope" (train / validation / test, 30 labels) and "with_oos" (label "UNK" = 30 added;
    test = in-scope test + out-of-scope test; extra splits ood_train / ood_validation)."""

    BUILDER_CONFIG_CLASS = MIntRec2Config
    BUILDER_CONFIGS = [
        MIntRec2Config(name="in_scope", version=_VERSION, include_out_of_scope=False, description="30 in-scope intents"),
        MIntRec2Config(name="with_oos", version=_VERSION, include_out_of_scope=True,
                       description="30 intents + out-of-scope (UNK) test rows and ood_train/ood_validation"),
    ]  # fmt: skip
    DEFAULT_CONFIG_NAME = "in_scope"
    LAYOUT = MINTREC2_LAYOUT
    DATASET_NAME = "mintrec2"

    def _info(self):
        label_names = MINTREC2_LABELS_WITH_OOS if self.config.include_out_of_scope else MINTREC2_LABELS
        features = {"id": datasets.Value("string"), "text": datasets.Value("string"),
                    "label": datasets.ClassLabel(names=label_names)}  # fmt: skip
        features.update({column: datasets.Value("string") for column in MINTREC2_METADATA_COLUMNS})
        features.update(_array_features())
        return datasets.DatasetInfo(
            description="MIntRec2.0: multimodal intent recognition and out-of-scope detection in conversations "
            "(text, WavLM audio, Swin RoI video features).",
            features=datasets.Features(features),
            homepage="https://github.com/thuiar/MIntRec2.0",
            citation=MINTREC2_CITATION,
            license=_LICENSE,
        )

    def _split_plan(self, data_dir):
        in_scope = _mintrec2_part(data_dir, out_of_scope=False)
        plan = {"train": [(in_scope, "train")], "validation": [(in_scope, "dev")], "test": [(in_scope, "test")]}
        if self.config.include_out_of_scope:
            out_of_scope = _mintrec2_part(data_dir, out_of_scope=True)
            plan["test"].append((out_of_scope, "test"))
            plan["ood_train"] = [(out_of_scope, "train")]
            plan["ood_validation"] = [(out_of_scope, "dev")]
        return plan

    def _metadata_columns(self):
        return MINTREC2_METADATA_COLUMNS


# --------------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------------

_BENCHMARKS = {"mintrec": "MIntRec", "mintrec2": "MIntRec2.0", "mintrec2.0": "MIntRec2.0"}


def normalize_benchmark(benchmark: str) -> str:
    """"MIntRec" / "mintrec" -> "MIntRec"; "MIntRec2.0" / "mintrec2" -> "MIntRec2.0"."""
    key = str(benchmark).lower().replace("-", "").replace("_", "")
    if key not in _BENCHMARKS:
        raise ValueError(f"Unknown benchmark {benchmark!r}; expected 'MIntRec' or 'MIntRec2.0'")
    return _BENCHMARKS[key]


def get_builder(
    data_dir: Union[str, os.PathLike],
    benchmark: str = "MIntRec",
    include_out_of_scope: bool = False,
    cache_dir: Optional[str] = None,
    task: str = "intent",
    skip_bad_rows: bool = False,
) -> _OfficialReleaseBuilder:
    """The configured builder for a local release folder (not yet prepared)."""
    benchmark = normalize_benchmark(benchmark)
    if benchmark == "MIntRec":
        if include_out_of_scope:
            raise ValueError("include_out_of_scope applies to MIntRec2.0 only; MIntRec has no out-of-scope data")
        if task not in ("intent", "binary"):
            raise ValueError(f"task must be 'intent' or 'binary', got {task!r}")
        return MIntRecBuilder(config_name=task, data_dir=data_dir, cache_dir=cache_dir, skip_bad_rows=skip_bad_rows)
    if task != "intent":
        raise ValueError("task='binary' (Emotion/Goal) is defined for MIntRec only")
    return MIntRec2Builder(
        config_name="with_oos" if include_out_of_scope else "in_scope",
        data_dir=data_dir,
        cache_dir=cache_dir,
        skip_bad_rows=skip_bad_rows,
    )


def load_mintrec(
    data_dir: Union[str, os.PathLike],
    benchmark: str = "MIntRec",
    include_out_of_scope: bool = False,
    cache_dir: Optional[str] = None,
    task: str = "intent",
    skip_bad_rows: bool = False,
) -> datasets.DatasetDict:
    """Read a local MIntRec / MIntRec2.0 release folder into a DatasetDict (prepared once, then cached).

    Splits: train, validation, test (+ ood_train, ood_validation for MIntRec2.0 with
    include_out_of_scope=True). With skip_bad_rows=True malformed rows are skipped; they are logged and
    listed (split, file, line, id, reason) in the returned DatasetDict's `skipped_rows` attribute."""
    builder = get_builder(data_dir, benchmark, include_out_of_scope, cache_dir, task, skip_bad_rows)
    builder.download_and_prepare()
    dataset_dict = builder.as_dataset()
    dataset_dict.skipped_rows = builder.skipped_rows
    return dataset_dict


def detect_release(path: Union[str, os.PathLike]) -> Optional[str]:
    """"MIntRec" / "MIntRec2.0" when `path` looks like that official release folder, else None."""
    path = Path(path)
    if (path / "train.tsv").is_file() and (path / "video_data").is_dir() and (path / "audio_data").is_dir():
        return "MIntRec"
    if (path / "in-scope" / "train.tsv").is_file():
        return "MIntRec2.0"
    return None
