# Copyright 2026 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""The training job's data: splits in the project's columns, what the job needs to know about them, DataLoaders."""

import json
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from datasets_scripts import MINTREC2_OOS_LABEL, load_any, resolve_source


@dataclass
class IntentData:
    """The splits and what the trainer needs to know about them."""

    splits: datasets.DatasetDict
    benchmark: str
    label_names: list  # in-scope intents, in the official order (the model's classes)
    oos_label_id: int | None  # id of "UNK" in the dataset's labels (= number of in-scope intents), open set only
    release_dir: Path | None  # the raw release folder, when there is one
    is_synthetic: bool
    hub_dataset_id: str | None  # the Hub dataset it was loaded from, when it was


def load_intent_data(dataset: str, data_dir: str | None, benchmark: str | None, open_set: bool | None) -> IntentData:
    """Loads any supported source (see `datasets_scripts.resolve_source`). `open_set`: None = on when the data has an
    out-of-scope class; False = in-scope rows only; True = required."""
    source = resolve_source(dataset, data_dir=data_dir, benchmark=benchmark)
    include_oos = open_set is not False and source.benchmark in (None, "MIntRec2.0")
    splits = load_any(source, include_out_of_scope=include_oos)
    for required in ("train", "validation", "test"):
        if required not in splits:
            raise ValueError(f"dataset {dataset!r} has no {required!r} split (found {list(splits)}).")
    all_names = splits["train"].features["label"].names
    has_oos_class = MINTREC2_OOS_LABEL in all_names
    if has_oos_class and all_names.index(MINTREC2_OOS_LABEL) != len(all_names) - 1:
        raise ValueError(f"dataset {dataset!r}: the out-of-scope label {MINTREC2_OOS_LABEL!r} must be the last class.")
    if open_set and not has_oos_class:
        raise ValueError(f"--open_set: dataset {dataset!r} has no {MINTREC2_OOS_LABEL!r} (out-of-scope) class.")
    label_names = all_names[:-1] if has_oos_class else all_names  # the model's classes: the in-scope intents
    oos_label_id = len(label_names) if has_oos_class and open_set is not False else None
    if has_oos_class and oos_label_id is None:  # a closed-set run never sees out-of-scope rows
        splits = datasets.DatasetDict(
            {name: split.filter(lambda label: label < len(label_names), input_columns="label")
             for name, split in splits.items() if not name.startswith("ood_")}
        )
    # A Parquet folder or Hub dataset names no benchmark: the label sets tell them apart (30 intents: MIntRec2.0).
    benchmark = source.benchmark or ("MIntRec2.0" if len(label_names) == 30 else "MIntRec")
    columns = ["text", "label", "audio_features", "video_features"]
    splits = splits.with_format("numpy", columns=columns)  # numpy rows: the processor pads them without copies
    hub_dataset_id = source.location if source.kind == "hub" else None
    return IntentData(splits, benchmark, list(label_names), oos_label_id, source.release_dir, source.is_synthetic,
                      hub_dataset_id)


def release_feature_models(data: IntentData) -> dict:
    """The extractors a release built from clips (`python -m datasets_scripts extract`) recorded in extraction.json,
    as `DyKenProcessor` fields, so that a checkpoint trained on it reads new clips the same way; {} for any other
    release (the processor then names the benchmark's official extractors). Random detector weights ("none") cannot
    be rebuilt from a name: such a checkpoint takes video features, or an extractor passed to its pipeline."""
    record = data.release_dir / "extraction.json" if data.release_dir else None
    if record is None or not record.is_file():
        return {}
    made_with = json.loads(record.read_text(encoding="utf-8"))
    video_weights = made_with["video"]["weights"]
    return {"audio_feature_model": made_with["audio"]["model"],
            "video_feature_model": None if video_weights in (None, "none") else video_weights}


def make_dataloader(dataset, processor, batch_size: int, shuffle: bool, num_workers: int = 0,
                    generator: torch.Generator | None = None) -> DataLoader:
    # Every DataLoader gets its own generator: starting an iterator then draws its base seed from it instead of
    # from the global RNG, so a resumed run's dropout RNG stays exactly where the checkpoint left it.
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=processor.collate,
                      num_workers=num_workers, generator=generator or torch.Generator())


def sample_ood_batch(data: IntentData, processor, batch_size: int, seed: int, batch_index: int, process_index: int) -> dict:
    """A batch of ood_train utterances for outlier exposure, chosen from (seed, batch index, process) alone: no
    sampler state, so a resumed run draws the same batches."""
    ood_split = data.splits["ood_train"]
    rng = np.random.default_rng([seed, batch_index, process_index])
    rows = [ood_split[int(i)] for i in rng.choice(len(ood_split), size=min(batch_size, len(ood_split)), replace=False)]
    return processor.collate([{key: row[key] for key in ("text", "audio_features", "video_features")} for row in rows])


def concatenate_batches(first: dict, second: dict) -> dict:
    """One batch from two: sequences are right-padded with zeros (= padding / masked) to the longer of the two.
    The model is padding-invariant, so the logits of each part are unchanged; one forward pass keeps DDP happy."""
    merged = {}
    for key in first:
        a, b = first[key], second[key]
        if a.dim() >= 2 and a.shape[1] != b.shape[1]:
            length = max(a.shape[1], b.shape[1])
            a, b = (F.pad(x, (0, 0) * (x.dim() - 2) + (0, length - x.shape[1])) for x in (a, b))
        merged[key] = torch.cat([a, b])
    return merged
