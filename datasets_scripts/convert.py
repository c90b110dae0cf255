"""Convert an official MIntRec / MIntRec2.0 release folder into a shareable Parquet dataset.

Output layout (what `datasets.load_dataset(OUT_DIR)` and a Hub dataset repo read back):

    OUT_DIR/
      README.md                                  dataset card; YAML: license, task_categories,
                                                 configs/data_files, dataset_info (features, splits)
      data/{split}-00000-of-0000N.parquet        one or more shards per split

Streaming: the builder writes Parquet directly (`download_and_prepare(file_format="parquet")`), one
example at a time, in row groups of `DEFAULT_WRITER_BATCH_SIZE` (32) examples, starting a new shard
every `max_shard_size` bytes; there is no intermediate Arrow copy. Peak memory is about one copy of
the feature pickles (each is a single dict and must be unpickled whole), never two.

To share it, upload OUT_DIR to a Hub dataset repository (what `--push_to_hub REPO` of the command line does):

    from dyken_hyena.hub import upload_folder
    upload_folder(OUT_DIR, "USER/NAME", repo_type="dataset", private=True, allow_patterns=UPLOAD_PATTERNS)
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Union

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from .builders import (
    MINTREC2_METADATA_COLUMNS,
    MINTREC_METADATA_COLUMNS,
    MINTREC_CITATION,
    MINTREC2_CITATION,
    get_builder,
    normalize_benchmark,
)


logger = logging.getLogger(__name__)

# Next to the model card's template, in the `model_cards` folder installed beside this package.
CARD_TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "model_cards" / "dataset_card_template.md"
# What a Hub dataset repository of the conversion holds: the card and the shards (see the layout above).
UPLOAD_PATTERNS = ["README.md", "data/*.parquet"]
_SPLIT_SOURCES = {
    "train": "train.tsv",
    "validation": "dev.tsv",
    "test": "test.tsv",
    "ood_train": "out-of-scope train.tsv",
    "ood_validation": "out-of-scope dev.tsv",
}


def _size_category(num_rows: int) -> str:
    """The Hub's size_categories bucket for a row count."""
    for upper, name in [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")]:
        if num_rows < upper:
            return name
    return "100K<n<1M"


def shard_file_name(split: str, index: int, num_shards: int) -> str:
    return f"{split}-{index:05d}-of-{num_shards:05d}.parquet"


def render_dataset_card(
    info: datasets.DatasetInfo,
    benchmark: str,
    shard_paths: dict[str, list[Path]],
    include_out_of_scope: bool = False,
    task: str = "intent",
    repo_id_or_path: str = "path/to/this/folder",
    skipped_rows: Optional[list] = None,
) -> DatasetCard:
    """Dataset card (README.md) whose YAML makes `load_dataset` restore the splits and exact features.

    info: the builder's DatasetInfo after preparation (features, and per split num_examples/num_bytes)."""
    benchmark = normalize_benchmark(benchmark)
    features = info.features
    label_names = features["label"].names
    num_rows = sum(split.num_examples for split in info.splits.values())

    card_data = DatasetCardData(
        license="cc-by-nc-sa-4.0",
        language=["en"],
        task_categories=["text-classification"],
        task_ids=["intent-classification"],
        tags=["multimodal", "intent-recognition", "audio", "video", "out-of-scope-detection"],
        pretty_name=benchmark if task == "intent" else f"{benchmark} (binary: Emotion / Goal)",
        size_categories=[_size_category(num_rows)],
    )
    # `configs` tells the Hub / load_dataset which files form which split.
    MetadataConfigs(
        {"default": {"data_files": [{"split": split, "path": f"data/{split}-*"} for split in info.splits]}}
    ).to_dataset_card_data(card_data)
    # `dataset_info` carries the Features (ClassLabel names, Array2D shapes) and split sizes.
    card_info = datasets.DatasetInfo(features=features, splits=datasets.SplitDict(), dataset_size=0, download_size=0)
    for split, split_info in info.splits.items():
        card_info.splits.add(
            datasets.SplitInfo(name=split, num_bytes=split_info.num_bytes, num_examples=split_info.num_examples)
        )
        card_info.dataset_size += split_info.num_bytes
        card_info.download_size += sum(path.stat().st_size for path in shard_paths[split])
    DatasetInfosDict({"default": card_info}).to_dataset_card_data(card_data)

    is_mintrec = benchmark == "MIntRec"
    splits = [
        {
            "name": split,
            "num_examples": split_info.num_examples,
            "source": "in-scope test.tsv + out-of-scope test.tsv"
            if (split == "test" and include_out_of_scope)
            else ("in-scope " if not is_mintrec and not split.startswith("ood") else "") + _SPLIT_SOURCES[split],
        }
        for split, split_info in info.splits.items()
    ]
    label_meaning = {
        ("MIntRec", "intent"): "one of the 20 MIntRec intents",
        ("MIntRec", "binary"): "coarse intent: Emotion (express emotions/attitudes) or Goal (achieve goals)",
    }.get((benchmark, task), "one of the 30 MIntRec2.0 intents" + (", or UNK (id 30) = out-of-scope" if include_out_of_scope else ""))
    return DatasetCard.from_template(
        card_data,
        template_path=str(CARD_TEMPLATE_PATH),
        pretty_name=card_data.pretty_name,
        description=(
            "MIntRec: 2,224 clips from the TV series Superstore annotated with 20 intents (ACM MM 2022)."
            if is_mintrec
            else "MIntRec2.0: 15,040 utterances from 1,245 multi-party dialogues (Superstore, The Big Bang Theory, "
            "Friends), 30 intents plus out-of-scope utterances (ICLR 2024)."
        ),
        benchmark=benchmark,
        homepage="https://github.com/thuiar/MIntRec" if is_mintrec else "https://github.com/thuiar/MIntRec2.0",
        config_name="default",
        include_out_of_scope=include_out_of_scope,
        repo_id_or_path=repo_id_or_path,
        splits=splits,
        skipped_rows=skipped_rows or [],
        id_example="`S05_E16_329` = season_episode_clip" if is_mintrec else "`dia0_utt0` = dialogue 0, utterance 0",
        label_names=label_names,
        label_meaning=label_meaning,
        has_intent_column="intent" in features,
        metadata_columns=MINTREC_METADATA_COLUMNS if is_mintrec else MINTREC2_METADATA_COLUMNS,
        audio_description="wav2vec 2.0 base hidden states (16 kHz)" if is_mintrec else "WavLM hidden states",
        video_description="Faster R-CNN RoI features of the speaker" if is_mintrec else "Swin RoI features of the speaker",
        license_text="CC BY-NC-SA 4.0 (Creative Commons Attribution-NonCommercial-ShareAlike 4.0)",
        citation=MINTREC_CITATION if is_mintrec else MINTREC2_CITATION + "\n\n" + MINTREC_CITATION,
    )


def convert_to_parquet(
    raw_dir: Union[str, os.PathLike],
    out_dir: Union[str, os.PathLike],
    benchmark: str = "MIntRec",
    include_out_of_scope: bool = False,
    task: str = "intent",
    max_shard_size: Union[int, str] = "500MB",
    skip_bad_rows: bool = False,
    overwrite: bool = False,
    repo_id: Optional[str] = None,
) -> Path:
    """Convert the release in `raw_dir` to Parquet shards + README.md in `out_dir`; returns `out_dir`.

    max_shard_size: (uncompressed Arrow) bytes per shard. repo_id: only used in the card's loading snippet.
    The builder writes into a staging folder inside out_dir, whose shards are then renamed into data/."""
    benchmark = normalize_benchmark(benchmark)
    out_dir = Path(out_dir)
    existing = sorted((out_dir / "data").glob("*.parquet")) if (out_dir / "data").is_dir() else []
    if existing and not overwrite:
        raise FileExistsError(
            f"{out_dir / 'data'} already holds {len(existing)} Parquet file(s) (e.g. {existing[0].name}); "
            "pass overwrite=True (--overwrite) or choose an empty folder"
        )
    for path in existing:
        path.unlink()
    (out_dir / "data").mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        builder = get_builder(raw_dir, benchmark, include_out_of_scope, str(staging / "cache"), task, skip_bad_rows)
        builder.download_and_prepare(
            output_dir=str(staging / "prepared"), file_format="parquet", max_shard_size=max_shard_size
        )
        shard_paths = {}
        for split in builder.info.splits:
            # The builder names shards {dataset_name}-{split}[-{i:05d}-of-{n:05d}].parquet.
            prepared = sorted((staging / "prepared").glob(f"{builder.dataset_name}-{split}.parquet")) or sorted(
                (staging / "prepared").glob(f"{builder.dataset_name}-{split}-[0-9]*-of-[0-9]*.parquet")
            )
            shard_paths[split] = [
                Path(shutil.move(path, out_dir / "data" / shard_file_name(split, index, len(prepared))))
                for index, path in enumerate(prepared)
            ]
        card = render_dataset_card(
            builder.info,
            benchmark,
            shard_paths,
            include_out_of_scope=include_out_of_scope,
            task=task,
            repo_id_or_path=repo_id or str(out_dir),
            skipped_rows=builder.skipped_rows,
        )
        card.save(out_dir / "README.md")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("Wrote %s", out_dir)
    return out_dir
