"""`python -m datasets_scripts extract`: a release in the official layout, made from your own clips.

    python -m datasets_scripts extract --clips clips/ --tsv annotations.tsv --out MyRelease --benchmark MIntRec
    load_mintrec("MyRelease")                                    # read as an official release

    # the clips split across processes (GPUs, or CPU processes as here); one release at the end
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --dynamo_backend no \\
        -m datasets_scripts extract --clips clips/ --tsv annotations.tsv --out MyRelease

The features are made as the official releases made theirs (`extraction_dyken`): audio = the last hidden states of
`facebook/wav2vec2-base-960h` (MIntRec; `microsoft/wavlm-base-plus` for MIntRec2.0) on the 16 kHz mono audio track,
(T, 768); video = for every frame, the speaker box's RoI features from a COCO Faster R-CNN ResNet-50-FPN, (T, 1, 256).
So a checkpoint trained on an official release reads them. (MIntRec2.0's official video features come from a Swin
detector: with `--benchmark MIntRec2.0` the video features are still Faster R-CNN ones.)

The annotation TSV (`--tsv`, UTF-8, tab-separated, one header row, one row per clip):

    season  episode  clip  text                          label   split  clip_path
    S05     E16      329   apparently, teens are ...     Inform  train
    mine    E01      7                                   Joke    test   recordings/take7.mov

- the benchmark's official TSV columns: MIntRec `season, episode, clip, text, label`; MIntRec2.0 `Dialogue_id,
  Utterance_id, Text, Label` plus `Start_timestamp, End_timestamp, Source, speakername`, which may be left out
  (written empty). The label is an official label name (MIntRec2.0: `UNK` rows go to the out-of-scope part). The
  text may be empty when `--asr_model` is given: it is then transcribed from the clip.
- `split` (optional): `train`, `dev` (or `validation`) or `test`. Without it, the file's name gives the split, so
  the official `train.tsv dev.tsv test.tsv` can be passed as they are (`--tsv` takes several files).
- `clip_path` (optional): the clip file, relative to `--clips`. Without it the file is found from the sample id
  under `--clips`: MIntRec `{season}/{episode}/{clip}.mp4`, then `{season}_{episode}_{clip}.mp4`; MIntRec2.0
  `dia{Dialogue_id}_utt{Utterance_id}.mp4`, then `dia{Dialogue_id}/utt{Utterance_id}.mp4`; each also with .mkv,
  .mov, .avi, .webm. (Not `clip`: in MIntRec that column is the clip number.) Each file holds one utterance; the
  timestamps are copied, not used to cut.

Speaker boxes (`--boxes boxes.json`, optional): `{"S05_E16_329": [[x1, y1, x2, y2] or null, ...], ...}`, one entry per
decoded frame, in pixels. Clips without an entry have their speaker detected and tracked (`extraction_dyken`).

Every train / dev / test split needs at least one clip (`load_mintrec` reads all three). Each bad clip (no file,
unreadable, no audio stream, no video frames, too short for one audio frame, boxes that do not fit the clip, an
empty transcription) is reported by sample id, file and reason: the ones a quick look at each file finds are
logged before the extraction starts. By default the good clips are extracted, then the command stops with the list
of all bad clips and writes no release (a rerun reuses the extracted clips); with `--skip_bad_clips` they are left
out, listed in the log and in the release's `extraction.json`. Nothing is dropped silently.

Resuming: each finished clip's features are saved at once in `OUT/extraction_work/` (one `.npz` per clip, atomically
renamed into place), so a rerun of the same command after a crash or a kill skips the clips already done. The
release (TSVs, then the pickles) is written at the end, each file atomically, and `extraction.json` last: it marks
a finished release. The work folder is then removed (`--keep_work_dir` keeps it). A rerun with options that change
the features (models, detector, precision) is refused, naming them; `--overwrite` starts over.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import json
import logging
import os
import pickle
import re
import shutil
import sys
import time
import zipfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .builders import (
    AUDIO_FEATURE_DIM,
    MINTREC2_LABELS,
    MINTREC2_OOS_LABEL,
    MINTREC_LABELS,
    MIntRecFormatError,
    _decode_tsv,
    normalize_benchmark,
)


logger = logging.getLogger(__name__)

WORK_DIR_NAME = "extraction_work"
RECORD_NAME = "extraction.json"  # written last: its presence marks a finished release
SETTINGS_NAME = "settings.json"
# Bump when the saved per-clip features change for the same settings, so older work folders are not reused.
WORK_FORMAT_VERSION = 1

DEFAULT_AUDIO_MODELS = {"MIntRec": "facebook/wav2vec2-base-960h", "MIntRec2.0": "microsoft/wavlm-base-plus"}
CLIP_EXTENSIONS = (".mp4", ".mkv", ".mov", ".avi", ".webm")
SPLIT_NAMES = {"train": "train", "dev": "dev", "validation": "dev", "test": "test"}
SPLITS = ("train", "dev", "test")

MINTREC_COLUMNS = ("season", "episode", "clip", "text", "label")
MINTREC2_COLUMNS = ("Dialogue_id", "Utterance_id", "Text", "Label", "Start_timestamp", "End_timestamp", "Source",
                    "speakername")  # fmt: skip
MINTREC2_OPTIONAL_COLUMNS = ("Start_timestamp", "End_timestamp", "Source", "speakername")
ID_COLUMNS = {"MIntRec": ("season", "episode", "clip"), "MIntRec2.0": ("Dialogue_id", "Utterance_id")}
TEXT_COLUMN = {"MIntRec": "text", "MIntRec2.0": "Text"}
LABEL_COLUMN = {"MIntRec": "label", "MIntRec2.0": "Label"}
EXTRA_COLUMNS = ("split", "clip_path")


class AnnotationError(ValueError):
    """The annotation TSV or the boxes file does not match the documented format; the message names the file and
    line."""


class BadClipsError(RuntimeError):
    """Clips that could not be used, listed with their reasons (raised unless `--skip_bad_clips`)."""

    def __init__(self, message: str, bad_clips: list):
        super().__init__(message)
        self.bad_clips = bad_clips


class OutputFolderError(RuntimeError):
    """`--out` cannot be used as it is (someone else's folder, a finished release, other settings)."""


class ExtractionOptionError(ValueError):
    """An option that cannot work: unknown detector weights, a speech model of the wrong width, ..."""


# --------------------------------------------------------------------------------------------------
# Annotations
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Annotation:
    """One clip to extract: its TSV row and where it comes from."""

    sample_id: str
    split: str  # train / dev / test
    row: dict  # official column -> value (optional MIntRec2.0 columns filled with "")
    where: str  # "file, line N"
    clip_file: Optional[Path]  # None when no candidate file exists
    tried: list  # candidate paths, for the "no clip file" message
    out_of_scope: bool  # MIntRec2.0 label UNK

    @property
    def text(self) -> str:
        return self.row.get("text", self.row.get("Text", ""))


def _official_columns(benchmark: str) -> tuple:
    return MINTREC_COLUMNS if benchmark == "MIntRec" else MINTREC2_COLUMNS


def _sample_id(benchmark: str, row: dict) -> str:
    if benchmark == "MIntRec":
        return "_".join([row["season"], row["episode"], row["clip"]])
    return f"dia{row['Dialogue_id']}_utt{row['Utterance_id']}"


def _clip_candidates(benchmark: str, row: dict, clips_dir: Path) -> list[Path]:
    if row.get("clip_path"):
        return [clips_dir / row["clip_path"]]
    if benchmark == "MIntRec":
        stems = [Path(row["season"], row["episode"], row["clip"]), Path(_sample_id(benchmark, row))]
    else:
        dialogue, utterance = row["Dialogue_id"], row["Utterance_id"]
        stems = [Path(f"dia{dialogue}_utt{utterance}"), Path(f"dia{dialogue}", f"utt{utterance}")]
    return [clips_dir / stem.with_name(stem.name + extension) for stem in stems for extension in CLIP_EXTENSIONS]


def read_annotations(tsv_paths: list, benchmark: str, clips_dir: Path, transcribe_empty_text: bool) -> list[Annotation]:
    """Every row of the annotation TSVs, checked (header, ids, splits, labels, texts) before any clip is read, and
    the clip file of each row looked up under `clips_dir` (`clip_file` is None when none of the candidates exists).

    Raises:
        AnnotationError: a missing file or bad header, or the rows that are wrong (each with its file and line)."""
    benchmark = normalize_benchmark(benchmark)
    official = _official_columns(benchmark)
    required = [c for c in official if benchmark == "MIntRec" or c not in MINTREC2_OPTIONAL_COLUMNS]
    text_column, label_column = TEXT_COLUMN[benchmark], LABEL_COLUMN[benchmark]
    labels = set(MINTREC_LABELS) if benchmark == "MIntRec" else set(MINTREC2_LABELS) | {MINTREC2_OOS_LABEL}
    annotations: list[Annotation] = []
    seen: dict[str, str] = {}
    problems: list[str] = []
    for tsv_path in map(Path, tsv_paths):
        if not tsv_path.is_file():
            raise AnnotationError(f"{tsv_path}: no such annotation file")
        reader = csv.reader(io.StringIO(_decode_tsv(tsv_path), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None) or []
        unknown = [column for column in header if column not in official and column not in EXTRA_COLUMNS]
        missing = [column for column in required if column not in header]
        if unknown or missing or len(set(header)) != len(header):
            raise AnnotationError(
                f"{tsv_path}, line 1: header {header!r}: "
                + (f"missing column(s) {missing}; " if missing else "")
                + (f"unknown column(s) {unknown}; " if unknown else "")
                + ("repeated column(s); " if len(set(header)) != len(header) else "")
                + f"expected the {benchmark} columns {list(required)}"
                + (f" (optionally {list(MINTREC2_OPTIONAL_COLUMNS)})" if benchmark != "MIntRec" else "")
                + f" and optionally {list(EXTRA_COLUMNS)}, tab-separated"
            )
        file_split = SPLIT_NAMES.get(tsv_path.stem.lower())
        if "split" not in header and file_split is None:
            raise AnnotationError(
                f"{tsv_path}: no `split` column, and the file name does not name a split; add a `split` column "
                "(train, dev or test) or name the file train.tsv, dev.tsv or test.tsv"
            )
        rows = 0
        for fields in reader:
            if not fields:
                continue
            rows += 1
            where = f"{tsv_path}, line {reader.line_num}"
            if len(fields) != len(header):
                problems.append(f"{where}: expected {len(header)} tab-separated columns {header}, got {len(fields)}")
                continue
            raw = dict(zip(header, fields))
            row = {column: raw.get(column, "") for column in official}
            bad_fields = [column for column, value in raw.items() if "\r" in value]
            if bad_fields:
                problems.append(f"{where}: carriage return inside column(s) {bad_fields}")
                continue
            empty_ids = [column for column in ID_COLUMNS[benchmark] if not row[column].strip()]
            if empty_ids:
                problems.append(f"{where}: empty id column(s) {empty_ids}")
                continue
            sample_id = _sample_id(benchmark, row)
            where = f"{where} (sample {sample_id})"
            if sample_id in seen:
                problems.append(f"{where}: duplicate sample id, first at {seen[sample_id]}")
                continue
            seen[sample_id] = where
            split = SPLIT_NAMES.get(raw.get("split", "").strip().lower()) if "split" in header else file_split
            if split is None:
                problems.append(f"{where}: split {raw.get('split')!r}; expected train, dev (or validation) or test")
                continue
            if row[label_column] not in labels:
                known = ", ".join(sorted(labels))
                problems.append(f"{where}: unknown label {row[label_column]!r}; known labels: {known}")
                continue
            if not row[text_column].strip() and not transcribe_empty_text:
                problems.append(f"{where}: empty text; fill it in, or pass --asr_model to transcribe the clip")
                continue
            candidates = _clip_candidates(benchmark, raw, clips_dir)
            clip_file = next((path for path in candidates if path.is_file()), None)
            annotations.append(Annotation(
                sample_id=sample_id, split=split, row=row, where=where, clip_file=clip_file, tried=candidates,
                out_of_scope=row[label_column] == MINTREC2_OOS_LABEL,
            ))  # fmt: skip
        if rows == 0:
            problems.append(f"{tsv_path}: only a header line, no rows")
    if problems:
        shown = problems[:50]
        raise AnnotationError(
            f"{len(problems)} problem(s) in the annotations:\n  " + "\n  ".join(shown)
            + (f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else "")
        )
    return annotations


def _check_splits(annotations: list[Annotation], benchmark: str, context: str) -> None:
    """Every split of every part written must have a row: `load_mintrec` reads them all."""
    parts = {"in-scope": [a for a in annotations if not a.out_of_scope]}
    out_of_scope = [a for a in annotations if a.out_of_scope]
    if out_of_scope:
        parts["out-of-scope"] = out_of_scope
    for part, rows in parts.items():
        empty = [split for split in SPLITS if not any(a.split == split for a in rows)]
        if empty:
            name = "" if benchmark == "MIntRec" else f" of the {part} data"
            raise AnnotationError(
                f"{context}: no clip in split(s) {empty}{name}; a release needs at least one clip in each of train, "
                "dev and test (load_mintrec reads all three)"
            )


def read_boxes(path: Optional[str], sample_ids: set) -> dict:
    """{sample_id: [box or None, ...]} from a boxes JSON file (see the module docstring)."""
    if path is None:
        return {}
    try:
        with open(path, encoding="utf-8") as file:
            boxes = json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise AnnotationError(f"{path}: cannot read the boxes file ({error})") from error
    if not isinstance(boxes, dict):
        raise AnnotationError(f"{path}: expected a JSON object {{sample_id: [[x1, y1, x2, y2] or null, ...]}}")
    for sample_id, frames in boxes.items():
        if not isinstance(frames, list) or not all(
            box is None or (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box))
            for box in frames
        ):
            raise AnnotationError(
                f"{path}: the entry of {sample_id!r} must be a list with one [x1, y1, x2, y2] (pixels) or null per "
                "frame"
            )
    unknown = sorted(set(boxes) - sample_ids)
    if unknown:
        logger.warning("%s: boxes for %d sample id(s) not in the annotations are not used: %s", path, len(unknown),
                       ", ".join(unknown[:20]) + (" ..." if len(unknown) > 20 else ""))  # fmt: skip
    return boxes


# --------------------------------------------------------------------------------------------------
# The work folder: one .npz per finished clip
# --------------------------------------------------------------------------------------------------


def _atomic_write(path: Path, write) -> None:
    """Write through `write(file)` into a temporary file next to `path`, flush it to disk, then rename it into place:
    a kill leaves either the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(temporary, "wb") as file:
        write(file)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


class WorkFolder:
    """`OUT/extraction_work/`: the settings the features are made with, and one `{sample_id}.npz` per finished clip.

    A clip's file holds `audio` (T_a, 768), `video` (T_v, 1, 256), `text` (its transcription, or ""),
    `frames_without_speaker` and `key`: a JSON string of what the features depend on besides the settings (the clip
    file's size and modification time, its boxes, whether it was transcribed). A file whose key no longer matches
    is recomputed. Saved with `np.savez` and read with `allow_pickle=False`: no pickle in the work folder."""

    def __init__(self, path: Path):
        self.path = path
        self.clips = path / "clips"

    def clip_path(self, sample_id: str) -> Path:
        if re.fullmatch(r"[A-Za-z0-9_.-]+", sample_id) and not sample_id.startswith("."):
            return self.clips / f"{sample_id}.npz"
        return self.clips / f"id-{hashlib.sha256(sample_id.encode()).hexdigest()[:24]}.npz"

    def save(self, sample_id: str, key: dict, audio: np.ndarray, video: np.ndarray, text: str,
             frames_without_speaker: int) -> None:  # fmt: skip
        arrays = dict(
            sample_id=np.array(sample_id), key=np.array(json.dumps(key, sort_keys=True)),
            audio=np.ascontiguousarray(audio, dtype=np.float32), video=np.ascontiguousarray(video, dtype=np.float32),
            text=np.array(text), frames_without_speaker=np.array(frames_without_speaker, dtype=np.int64),
        )  # fmt: skip
        _atomic_write(self.clip_path(sample_id), lambda file: np.savez(file, **arrays))

    def _read(self, sample_id: str, names: Optional[tuple] = None) -> Optional[dict]:
        path = self.clip_path(sample_id)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as saved:  # members are read one by one, when asked for
                clip = {name: saved[name] for name in (names or saved.files)}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
            logger.warning("%s: unreadable (%s); the clip is extracted again", path, error)
            return None
        return clip if str(clip["sample_id"]) == sample_id else None

    def is_done(self, sample_id: str, key: dict) -> bool:
        """Whether the clip's features are saved, with this key (reads only the key, not the features)."""
        saved = self._read(sample_id, ("sample_id", "key"))
        return saved is not None and str(saved["key"]) == json.dumps(key, sort_keys=True)

    def load(self, sample_id: str) -> Optional[dict]:
        """The saved clip (`audio`, `video`, `text`, `frames_without_speaker`, ...), or None."""
        return self._read(sample_id)

    def remove_temporary_files(self) -> None:
        for temporary in self.clips.glob(".*.tmp-*"):
            temporary.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------------
# The release
# --------------------------------------------------------------------------------------------------


def _release_files(benchmark: str) -> list[str]:
    """Files of the official layout, relative to the release folder."""
    if benchmark == "MIntRec":
        return [f"{split}.tsv" for split in SPLITS] + ["audio_data/audio_feats.pkl", "video_data/video_feats.pkl"]
    files = []
    for part in ("in-scope", "out-of-scope/MIntRec2.0-OOD"):
        files += [f"{part}/{split}.tsv" for split in SPLITS]
        files += [f"{part}/audio_data/wavlm_feats_binary.pkl", f"{part}/video_data/swin_roi_binary.pkl"]
    return files


def _tsv_bytes(header: tuple, rows: list[list[str]]) -> bytes:
    # Plain tab-joined lines without quoting, as the official TSVs: the builders read them with QUOTE_NONE.
    lines = []
    for row in [list(header), *rows]:
        for field in row:
            if any(character in field for character in "\t\n\r"):
                raise ValueError(f"a TSV field holds a tab or a line break: {field!r}")
        lines.append("\t".join(row))
    return ("\n".join(lines) + "\n").encode("utf-8")


def write_release(out: Path, benchmark: str, annotations: list[Annotation], work: WorkFolder) -> list[str]:
    """Write the TSVs and the feature pickles of the official layout from the work folder; returns the files written.

    Audio: {sample_id: (T, 768) float32}; video: MIntRec {sample_id: [T arrays of (1, 256)]} (the official pickle's
    list of key frames), MIntRec2.0 {sample_id: (T, 1, 256) float32}."""
    columns, text_column = _official_columns(benchmark), TEXT_COLUMN[benchmark]
    if benchmark == "MIntRec":
        parts = {"": annotations}
        pickles = {"": ("audio_data/audio_feats.pkl", "video_data/video_feats.pkl")}
    else:
        parts = {"in-scope/": [a for a in annotations if not a.out_of_scope],
                 "out-of-scope/MIntRec2.0-OOD/": [a for a in annotations if a.out_of_scope]}  # fmt: skip
        pickles = {part: ("audio_data/wavlm_feats_binary.pkl", "video_data/swin_roi_binary.pkl") for part in parts}
    written = []
    for part, rows in parts.items():
        if not rows:
            continue
        audio_features, video_features, split_rows = {}, {}, {split: [] for split in SPLITS}
        for annotation in rows:
            saved = work.load(annotation.sample_id)
            if saved is None:
                raise RuntimeError(
                    f"{annotation.sample_id}: its features are missing from {work.clips}; run the command again"
                )
            row = dict(annotation.row)
            if not row[text_column].strip():
                row[text_column] = str(saved["text"])
            split_rows[annotation.split].append([row[column] for column in columns])
            audio_features[annotation.sample_id] = saved["audio"]
            video = saved["video"]
            video_features[annotation.sample_id] = list(video) if benchmark == "MIntRec" else video
        for split in SPLITS:
            data = _tsv_bytes(columns, split_rows[split])
            _atomic_write(out / f"{part}{split}.tsv", lambda file, data=data: file.write(data))
            written.append(f"{part}{split}.tsv")
        audio_name, video_name = pickles[part]
        for name, features in ((audio_name, audio_features), (video_name, video_features)):
            # Protocol 4, as the official pickles; read back with the restricted unpickler (safe_pickle).
            _atomic_write(out / f"{part}{name}", lambda file, data=features: pickle.dump(data, file, protocol=4))
            written.append(f"{part}{name}")
    return written


# --------------------------------------------------------------------------------------------------
# Extraction
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class BadClip:
    sample_id: str
    clip: str  # the file (relative to --clips when under it), or "" when none was found
    reason: str

    def __str__(self) -> str:
        return f"{self.sample_id} ({self.clip or 'no file'}): {self.reason}"


def _relative(path: Optional[Path], clips_dir: Path) -> str:
    if path is None:
        return ""
    try:
        return str(Path(path).resolve().relative_to(clips_dir.resolve()))
    except ValueError:
        return Path(path).name


def _clip_key(annotation: Annotation, boxes: Optional[list], transcribe: bool) -> dict:
    status = annotation.clip_file.stat()
    return {"size": status.st_size, "mtime_ns": status.st_mtime_ns,
            "boxes": None if boxes is None else _digest(boxes), "transcribe": transcribe}  # fmt: skip


def _resolve_dtype(name: str, device) -> str:
    """"float32" or "bfloat16": what the features will be computed in (a setting: results differ)."""
    import torch

    if name == "auto":
        return "bfloat16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "float32"
    return name


def _model_identity(name: str) -> str:
    """A local folder or file by its absolute path (the work folder is local), a Hub id as it is."""
    return os.path.abspath(name) if os.path.exists(name) else name


def _settings(args, benchmark: str, precision: str) -> dict:
    video_weights = args.video_weights
    settings = {
        "format": WORK_FORMAT_VERSION,
        "benchmark": benchmark,
        "audio_model": _model_identity(args.audio_model),
        "video_weights": _model_identity(video_weights) if video_weights.lower() != "none" else "none",
        "detector_min_size": args.detector_min_size,
        "detector_max_size": args.detector_max_size,
        "detector_proposals": args.detector_proposals,
        "person_score_threshold": args.person_score_threshold,
        "precision": precision,
        "asr_model": None if args.asr_model is None else _model_identity(args.asr_model),
    }
    if os.path.isfile(video_weights):
        with open(video_weights, "rb") as file:
            settings["video_weights_sha256"] = hashlib.file_digest(file, "sha256").hexdigest()
    return settings


def build_detector(video_weights: str, min_size: Optional[int], max_size: Optional[int], proposals: Optional[int]):
    """torchvision's Faster R-CNN ResNet-50-FPN: COCO weights by name ("DEFAULT", "COCO_V1"), random ones ("none",
    from a fixed seed, so that every process builds the same detector), or a state dict from a local
    `.safetensors` / `.pt` file."""
    import torch

    from extraction_dyken import check_clip_dependencies

    check_clip_dependencies()
    from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights, fasterrcnn_resnet50_fpn

    options = {}
    if min_size is not None:
        options["min_size"] = min_size
    if max_size is not None:
        options["max_size"] = max_size
    if proposals is not None:
        options.update(rpn_pre_nms_top_n_test=proposals, rpn_post_nms_top_n_test=proposals)
    if os.path.isfile(video_weights):
        detector = fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, **options)
        if video_weights.endswith(".safetensors"):
            from safetensors.torch import load_file

            state_dict = load_file(video_weights)
        else:
            state_dict = torch.load(video_weights, map_location="cpu", weights_only=True)
        detector.load_state_dict(state_dict)
        return detector
    if video_weights.lower() == "none":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, **options)
    return fasterrcnn_resnet50_fpn(weights=FasterRCNN_ResNet50_FPN_Weights.verify(video_weights.upper()), **options)


def check_video_weights(video_weights: str) -> None:
    """Refuse a `--video_weights` that `build_detector` cannot build, before anything is written."""
    if os.path.isfile(video_weights) or video_weights.upper() in ("DEFAULT", "COCO_V1", "NONE"):
        return
    raise ExtractionOptionError(
        f"--video_weights {video_weights!r}: expected DEFAULT or COCO_V1 (torchvision's COCO weights), none "
        "(random), or an existing .safetensors / .pt state dict file"
    )


class ClipFeatureMaker:
    """The models of one process, and the features of a chunk of clips."""

    def __init__(self, args, device, precision: str):
        import torch

        from extraction_dyken import AudioFeatureExtractor, VideoFeatureExtractor

        dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
        self.audio = AudioFeatureExtractor(args.audio_model, device=device, dtype=dtype)
        if self.audio.hidden_size != AUDIO_FEATURE_DIM:
            raise ExtractionOptionError(
                f"--audio_model {args.audio_model} gives {self.audio.hidden_size}-d features; the release format holds "
                f"{AUDIO_FEATURE_DIM}-d audio features (wav2vec 2.0 / WavLM base models)"
            )
        detector = build_detector(args.video_weights, args.detector_min_size, args.detector_max_size,
                                  args.detector_proposals)  # fmt: skip
        self.video = VideoFeatureExtractor(
            detector=detector, device=device, dtype=dtype, person_score_threshold=args.person_score_threshold
        )
        self.asr = None
        if args.asr_model is not None:
            from transformers import pipeline

            self.asr = pipeline("automatic-speech-recognition", model=args.asr_model, device=device)
        self.audio_batch_size = args.audio_batch_size
        self.video_batch_size = args.video_batch_size

    def clip_problem(self, clip, boxes: Optional[list]) -> Optional[str]:
        """Why a decoded clip cannot be used, or None."""
        if clip.waveform is None:
            return "no audio stream"
        if clip.waveform.size < self.audio.minimum_samples:
            seconds, minimum = clip.waveform.size / clip.sample_rate, self.audio.minimum_samples / clip.sample_rate
            return f"too short: {seconds:.3f} s of audio, at least {minimum:.3f} s are needed for one audio frame"
        if not clip.has_video:
            return "no video frames (no video stream, or one that decodes to no frame)"
        if boxes is not None and len(boxes) != clip.frames.shape[0]:
            return f"the boxes file gives {len(boxes)} boxes; the clip has {clip.frames.shape[0]} frames"
        return None


def _broadcast_failure(state, failure: Optional[str]) -> None:
    """Raise on every process when the main process failed a step that the others waited for."""
    from accelerate.utils import broadcast_object_list

    if state.num_processes > 1:
        failure = broadcast_object_list([failure])[0]
    if failure is not None:
        raise OutputFolderError(failure)


def prepare_output_folder(out: Path, settings: dict, overwrite: bool) -> None:
    """Create or check `out` (main process only).

    An empty or new folder is used. A folder this command wrote keeps going: an unfinished run is resumed when its
    settings are the same (else refused, naming them), a finished release is refused; `--overwrite` removes this
    command's files there (work folder, record, release files) and starts over. Any other folder is refused."""
    work_dir, record = out / WORK_DIR_NAME, out / RECORD_NAME
    settings_file = work_dir / SETTINGS_NAME
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"--out {out} is a file; expected a new or empty folder")
    if out.is_dir() and any(out.iterdir()):
        if not (record.is_file() or settings_file.is_file()):
            raise OutputFolderError(
                f"--out {out} is not empty and was not written by `extract` (no {RECORD_NAME} or {WORK_DIR_NAME}/); "
                "choose a new or empty folder"
            )
        if overwrite:
            shutil.rmtree(work_dir, ignore_errors=True)
            record.unlink(missing_ok=True)
            for benchmark in ("MIntRec", "MIntRec2.0"):
                for name in _release_files(benchmark):
                    (out / name).unlink(missing_ok=True)
        elif record.is_file():
            raise OutputFolderError(
                f"--out {out} already holds a finished release ({RECORD_NAME}); pass --overwrite to extract it again"
            )
        else:
            previous = json.loads(settings_file.read_text(encoding="utf-8"))
            differences = [
                f"{key}: {previous.get(key)!r} then, {settings.get(key)!r} now"
                for key in sorted(set(previous) | set(settings))
                if previous.get(key) != settings.get(key)
            ]
            if differences:
                raise OutputFolderError(
                    f"--out {out} holds an unfinished extraction made with other settings, whose features cannot be "
                    "mixed with this run's:\n  " + "\n  ".join(differences)
                    + "\nrerun with the same options to resume it, or pass --overwrite to start over"
                )
            logger.info("Resuming the unfinished extraction in %s", out)
    work_dir.mkdir(parents=True, exist_ok=True)
    data = json.dumps(settings, indent=1, sort_keys=True).encode()
    _atomic_write(settings_file, lambda file: file.write(data))


def _library_versions() -> dict:
    from importlib import metadata

    versions = {}
    for package in ("torch", "torchvision", "transformers", "av"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def extract_release(args) -> Path:
    """Run the `extract` command (see the module docstring); returns the release folder.

    Raises:
        AnnotationError, ExtractionOptionError, OutputFolderError, BadClipsError (with every bad clip), ImportError
        (PyAV or torchvision missing)."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import gather_object, parse_flag_from_env
    from tqdm.auto import tqdm

    from extraction_dyken import check_clip_dependencies

    benchmark = normalize_benchmark(args.benchmark)
    if args.audio_model is None:
        args.audio_model = DEFAULT_AUDIO_MODELS[benchmark]
    clips_dir, out = Path(args.clips), Path(args.out)
    if not clips_dir.is_dir():
        raise ExtractionOptionError(f"--clips {clips_dir}: no such folder")
    check_video_weights(args.video_weights)
    check_clip_dependencies()  # before anything is written
    started = time.perf_counter()

    # Everything that can be checked before a clip is decoded, on every process alike (they all fail alike).
    annotations = read_annotations(args.tsv, benchmark, clips_dir, transcribe_empty_text=args.asr_model is not None)
    _check_splits(annotations, benchmark, ", ".join(map(str, args.tsv)))
    boxes = read_boxes(args.boxes, {a.sample_id for a in annotations})

    # PartialState reads no ACCELERATE_USE_CPU itself (Accelerator does): without `cpu=True` CPU processes launched
    # together would not form a process group, and each would extract every clip.
    use_cpu = args.device == "cpu" or parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.accelerator.is_available()
    state = PartialState(cpu=use_cpu)

    device = torch.device(args.device) if args.device else state.device
    precision = _resolve_dtype(args.dtype, device)
    settings = _settings(args, benchmark, precision)
    failure = None
    if state.is_main_process:
        try:
            prepare_output_folder(out, settings, args.overwrite)
        except OutputFolderError as error:
            failure = str(error)
    _broadcast_failure(state, failure)
    state.wait_for_everyone()
    work = WorkFolder(out / WORK_DIR_NAME)
    if state.is_main_process:
        work.remove_temporary_files()  # left by a kill in the middle of a save

    # Bad clips found without decoding (no file, not a media file, no audio or no video stream), on all processes.
    with state.split_between_processes(annotations) as mine:
        bad = _probe_clips(mine, clips_dir, show_progress=state.is_main_process)
    bad = [BadClip(**entry) for entry in gather_object([dataclasses.asdict(clip) for clip in bad])]
    if bad and state.is_main_process:
        # Said now, so that a long extraction can be stopped and the clips fixed; the good clips are extracted
        # either way (a rerun reuses them), so that the list at the end also has the clips that fail to decode.
        logger.warning(
            "%d bad clip(s) found before decoding:\n  %s\n%s", len(bad), "\n  ".join(map(str, bad)),
            "they are left out (--skip_bad_clips)" if args.skip_bad_clips
            else "the other clips are extracted, then the command stops with the list of bad clips (or pass "
            "--skip_bad_clips to leave them out)",
        )  # fmt: skip

    # The clips still to do (a rerun skips the finished ones), split across the processes.
    bad_ids = {clip.sample_id for clip in bad}
    keys = {}
    for annotation in annotations:
        if annotation.sample_id not in bad_ids:
            keys[annotation.sample_id] = _clip_key(
                annotation, boxes.get(annotation.sample_id), args.asr_model is not None and not annotation.text.strip()
            )
    todo = [a for a in annotations if a.sample_id in keys and not work.is_done(a.sample_id, keys[a.sample_id])]
    done_before = len(keys) - len(todo)
    if state.is_main_process:
        processes = f", on {state.num_processes} processes" if state.num_processes > 1 else ""
        logger.info("%d clip(s): %d already extracted, %d to extract, %d bad%s", len(annotations), done_before,
                    len(todo), len(bad), processes)  # fmt: skip
    state.wait_for_everyone()  # every process has listed the finished clips before any new one is saved

    new_bad: list[BadClip] = []
    if todo:
        maker = ClipFeatureMaker(args, device, precision)
        with state.split_between_processes(todo) as mine:
            progress = tqdm(total=len(mine), desc="extracting", unit="clip", disable=not state.is_main_process)
            for start in range(0, len(mine), args.audio_batch_size):
                chunk = mine[start : start + args.audio_batch_size]
                new_bad += _extract_chunk(maker, chunk, boxes, keys, clips_dir, work, progress)
            progress.close()
    new_bad = [BadClip(**entry) for entry in gather_object([dataclasses.asdict(clip) for clip in new_bad])]
    state.wait_for_everyone()
    bad += new_bad
    if bad and not args.skip_bad_clips:
        raise _bad_clips_error(bad, out, annotations_done=len(keys) - len(new_bad))

    bad_ids = {clip.sample_id for clip in bad}
    kept = [a for a in annotations if a.sample_id not in bad_ids]
    if not state.is_main_process:
        return out
    if bad:
        logger.warning("Left out %d bad clip(s) (--skip_bad_clips):\n  %s", len(bad), "\n  ".join(map(str, bad)))
    _check_splits(kept, benchmark, f"{', '.join(map(str, args.tsv))}, after leaving out {len(bad)} bad clip(s)")
    written = write_release(out, benchmark, kept, work)
    record = _record(args, benchmark, settings, kept, bad, boxes, work, written, time.perf_counter() - started)
    data = json.dumps(record, indent=1, ensure_ascii=False).encode("utf-8")
    _atomic_write(out / RECORD_NAME, lambda file: file.write(data))
    if not args.keep_work_dir:
        shutil.rmtree(work.path, ignore_errors=True)
    logger.info("Wrote %s: %s", out, ", ".join(f"{split} {sum(a.split == split for a in kept)}" for split in SPLITS))
    return out


def _probe_clips(annotations: list[Annotation], clips_dir: Path, show_progress: bool) -> list[BadClip]:
    """The clips that a look at their files (no decoding) shows to be bad."""
    from tqdm.auto import tqdm

    from extraction_dyken import ClipError, probe_clip

    bad = []
    for annotation in tqdm(annotations, desc="checking clips", disable=not show_progress, leave=False):
        where = _relative(annotation.clip_file, clips_dir)
        if annotation.clip_file is None:
            tried = ", ".join(_relative(path, clips_dir) for path in annotation.tried[:: len(CLIP_EXTENSIONS)])
            reason = f"no clip file (looked for {tried}, with the extensions {', '.join(CLIP_EXTENSIONS)})"
        else:
            try:
                streams = probe_clip(annotation.clip_file)
            except ClipError as error:
                reason = error.reason
            else:
                reason = None if streams.has_audio and streams.has_video else (
                    "no audio stream" if not streams.has_audio else "no video stream")  # fmt: skip
        if reason is not None:
            bad.append(BadClip(annotation.sample_id, where, reason))
    return bad


def _extract_chunk(maker: ClipFeatureMaker, chunk: list, boxes: dict, keys: dict, clips_dir: Path, work: WorkFolder,
                   progress) -> list[BadClip]:  # fmt: skip
    """Extract and save a chunk of clips; returns the bad ones.

    Each clip is decoded and its video features (and transcription) made at once, so that only one clip's frames
    are held in memory (a 10 s 720p clip decodes to 700 MB); the waveforms of the chunk then go through the speech
    model as one batch, and each clip is saved."""
    from extraction_dyken import ClipError, read_clip, transcribe

    bad, done = [], []
    for annotation in chunk:
        where = _relative(annotation.clip_file, clips_dir)
        clip_boxes = boxes.get(annotation.sample_id)
        key = keys[annotation.sample_id]
        try:
            clip = read_clip(annotation.clip_file)
            problem = maker.clip_problem(clip, clip_boxes)
            if problem is None:
                try:
                    video, report = maker.video(clip.frames, boxes=clip_boxes, batch_size=maker.video_batch_size)
                except ValueError as error:
                    if clip_boxes is None:
                        raise
                    problem = f"--boxes: {error}"
            if problem is None and key["transcribe"]:
                text = transcribe(clip, maker.asr)
                problem = None if text else "the transcription is empty (no speech was recognised)"
            else:
                text = ""
        except ClipError as error:
            problem = error.reason
        if problem is not None:
            bad.append(BadClip(annotation.sample_id, where, problem))
            progress.update(1)
            continue
        done.append((annotation, key, clip.waveform, video, text, report.frames_without_speaker))
        del clip  # the frames are no longer needed
    audio = maker.audio([waveform for _, _, waveform, *_ in done], batch_size=maker.audio_batch_size)
    for (annotation, key, _, video, text, frames_without_speaker), audio_features in zip(done, audio):
        work.save(annotation.sample_id, key, audio_features, video, text, frames_without_speaker)
        progress.update(1)
    return bad


def _bad_clips_error(bad: list[BadClip], out: Path, annotations_done: int) -> BadClipsError:
    listing = "\n  ".join(map(str, bad))
    kept = (f" The features of the {annotations_done} clip(s) done so far are kept in {out / WORK_DIR_NAME}: a rerun "
            "does not recompute them." if annotations_done else "")  # fmt: skip
    return BadClipsError(
        f"{len(bad)} bad clip(s); no release was written:\n  {listing}\nFix or remove them, or rerun with "
        f"--skip_bad_clips to leave them out.{kept}",
        bad,
    )


def _record(args, benchmark, settings, kept, bad, boxes, work, written, seconds) -> dict:
    """`extraction.json`: how the features were made. Paths are relative (a release is shared)."""
    frames_without_speaker, transcribed = {}, []
    for annotation in kept:
        saved = work.load(annotation.sample_id)
        if int(saved["frames_without_speaker"]):
            frames_without_speaker[annotation.sample_id] = int(saved["frames_without_speaker"])
        if str(saved["text"]):
            transcribed.append(annotation.sample_id)

    def public(name):
        return None if name is None else (Path(name).name if os.path.exists(name) else name)

    return {
        "benchmark": benchmark,
        "command": "python -m datasets_scripts extract",
        "audio": {"model": public(args.audio_model), "sample_rate": 16000, "features": "last_hidden_state (T, 768)"},
        "video": {
            "detector": "torchvision fasterrcnn_resnet50_fpn",
            "weights": public(args.video_weights),
            "min_size": args.detector_min_size, "max_size": args.detector_max_size,
            "proposals": args.detector_proposals, "person_score_threshold": args.person_score_threshold,
            "features": "box_roi_pool (RoIAlign 7x7) of the speaker box, mean over 7x7: (T, 1, 256)",
            "boxes_given": sum(1 for a in kept if a.sample_id in boxes),
            "boxes_detected": sum(1 for a in kept if a.sample_id not in boxes),
        },  # fmt: skip
        "asr_model": public(args.asr_model),
        "precision": settings["precision"],
        "clips": {split: sum(a.split == split for a in kept) for split in SPLITS},
        "out_of_scope_clips": sum(a.out_of_scope for a in kept),
        "skipped_clips": [dataclasses.asdict(clip) for clip in bad],
        "frames_without_speaker": frames_without_speaker,
        "transcribed": transcribed,
        "files": written,
        "seconds": round(seconds, 1),
        "versions": _library_versions(),
    }


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------


def add_extract_parser(commands) -> argparse.ArgumentParser:
    """The `extract` subcommand of `python -m datasets_scripts`."""
    parser = commands.add_parser(
        "extract", help="your own clips + an annotation TSV -> a release in the official layout",
        description=__doc__.split("\n\n")[0] + " See datasets_scripts/clips.py for the annotation format.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )  # fmt: skip
    parser.add_argument("--clips", required=True, help="folder holding the clip files")
    parser.add_argument("--tsv", required=True, nargs="+",
                        help="annotation TSV(s): the official columns, optionally split and clip_path")
    parser.add_argument("--out", required=True,
                        help="the release folder to write: new or empty, or one this command started")
    parser.add_argument("--benchmark", choices=["MIntRec", "MIntRec2.0"], default="MIntRec")
    parser.add_argument("--audio_model", default=None,
                        help="Hub id or local folder of the speech model (default: facebook/wav2vec2-base-960h for "
                             "MIntRec, microsoft/wavlm-base-plus for MIntRec2.0)")
    parser.add_argument("--video_weights", default="DEFAULT",
                        help="Faster R-CNN ResNet-50-FPN weights: DEFAULT / COCO_V1 (torchvision, COCO), none "
                             "(random, seeded: for tests and timing) or a .safetensors / .pt state dict file")
    parser.add_argument("--detector_min_size", type=int, default=None,
                        help="the detector's resize (torchvision: 800); smaller is faster but changes the features")
    parser.add_argument("--detector_max_size", type=int, default=None,
                        help="the detector's resize cap (torchvision: 1333)")
    parser.add_argument("--detector_proposals", type=int, default=None,
                        help="region proposals per frame when the speaker is detected (torchvision: 1000); fewer is "
                             "faster")
    parser.add_argument("--person_score_threshold", type=float, default=0.5,
                        help="detected persons scoring below this are not speaker candidates")
    parser.add_argument("--boxes", default=None,
                        help="JSON {sample_id: [[x1, y1, x2, y2] or null, one per frame]} of speaker boxes")
    parser.add_argument("--asr_model", default=None,
                        help="ASR model (Hub id or folder) that transcribes the rows with an empty text")
    parser.add_argument("--skip_bad_clips", action="store_true",
                        help="leave bad clips out (they are listed) instead of stopping")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda, cuda:1 ... (default: the process's accelerate device; leave it unset under "
                             "accelerate launch)")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto",
                        help="auto = bfloat16 autocast on a CUDA GPU that supports it, else float32")
    parser.add_argument("--audio_batch_size", type=int, default=8,
                        help="clips decoded, then run through the speech model, at a time")
    parser.add_argument("--video_batch_size", type=int, default=8, help="frames per detector pass")
    parser.add_argument("--overwrite", action="store_true", help="start over in an --out this command wrote before")
    parser.add_argument("--keep_work_dir", action="store_true",
                        help=f"keep --out/{WORK_DIR_NAME} (the per-clip features) at the end")
    return parser


def run_extract(args) -> int:
    """Entry point of the subcommand: 0 on success, 1 with a message on stderr for bad input or bad clips."""
    for name in ("audio_batch_size", "video_batch_size"):
        if getattr(args, name) < 1:
            print(f"error: --{name} must be at least 1", file=sys.stderr)
            return 1
    try:
        out = extract_release(args)
    except (AnnotationError, MIntRecFormatError, ExtractionOptionError, OutputFolderError, BadClipsError,
            ImportError) as error:  # fmt: skip
        print(f"error: {error}", file=sys.stderr)
        return 1
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(f"Wrote {out}")
    return 0
