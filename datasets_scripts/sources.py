"""Where a dataset comes from: one decision, then one way to load it.

    from datasets_scripts import load_any, resolve_source
    source = resolve_source("synthetic", benchmark="MIntRec2.0")   # the built-in synthetic MIntRec2.0 release
    source = resolve_source("mintrec", data_dir="/data/MIntRec")   # the official release in a folder
    source = resolve_source("/data/mintrec-parquet")               # a folder written by `convert`
    source = resolve_source("someone/mintrec")                     # a Hub dataset id
    dataset = load_any(source, include_out_of_scope=source.benchmark == "MIntRec2.0")

`resolve_source` is the only place that tells the kinds of source apart (the synthetic data, an official
release folder, a Parquet folder, a Hub dataset) and works out the benchmark where it can be known
before loading; `load_any` reads what it decided.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Optional, Union

import datasets

from .builders import MINTREC2_LAYOUT, MINTREC_LAYOUT, detect_release, load_mintrec, normalize_benchmark
from .synthetic import METADATA_FILENAME, ensure_release


__all__ = ["DataSource", "resolve_source", "load_any"]

# The names of the official releases, read from the folder given as data_dir.
_OFFICIAL_RELEASE_NAMES = ("mintrec", "mintrec2", "mintrec2.0")
_PARQUET_LAYOUT = "README.md + data/{split}-00000-of-0000N.parquet (python -m datasets_scripts convert)"


@dataclasses.dataclass(frozen=True)
class DataSource:
    """A dataset's location and what is known about it before it is loaded.

    Attributes:
        kind: "release" (a folder in the official MIntRec / MIntRec2.0 layout, real or synthetic),
            "parquet" (a folder written by `python -m datasets_scripts convert`) or "hub" (a Hub dataset id).
        location: the folder (a Path) or the Hub dataset id (a str).
        benchmark: "MIntRec" or "MIntRec2.0"; None for a Parquet folder or Hub dataset when no benchmark was
            given, since only its label set (known after loading) tells.
        release_dir: the release folder for kind "release", else None.
        is_synthetic: the data was made by `datasets_scripts.synthetic` (the built-in synthetic data, or a
            release folder holding synthetic_metadata.json).
    """

    kind: str
    location: Union[Path, str]
    benchmark: Optional[str]
    release_dir: Optional[Path]
    is_synthetic: bool


def resolve_source(
    dataset: Union[str, os.PathLike],
    data_dir: Optional[Union[str, os.PathLike]] = None,
    benchmark: Optional[str] = None,
) -> DataSource:
    """Works out what `dataset` names. The built-in synthetic release is written here on first use.

    Args:
        dataset:
            "synthetic": a synthetic release in the official layout: without data_dir the built-in one of the
                benchmark (`synthetic.ensure_release(benchmark)`, cached); with data_dir that folder, written with
                the built-in parameters when missing or empty (see `ensure_release` for what else it accepts).
            "mintrec" / "mintrec2": the official release in the folder data_dir.
            a folder: an official release folder (recognised by its layout) or a Parquet folder.
            anything else: a Hub dataset id.
        data_dir: the release folder, with "synthetic" (optional) and "mintrec" / "mintrec2" (required).
        benchmark: "MIntRec" or "MIntRec2.0". For "synthetic", which built-in release (default MIntRec);
            for a release, checked against its layout; for a Parquet folder or Hub dataset, taken as given.

    Raises:
        ValueError: a missing or meaningless data_dir, a benchmark that contradicts the data, or a folder that
            is neither a release nor a Parquet folder.
        FileNotFoundError: a path (or data_dir) that is not a folder.
        FileExistsError: "synthetic" with a data_dir that holds something else (see `ensure_release`).
    """
    name = os.fspath(dataset)
    key = name.lower()
    requested_benchmark = normalize_benchmark(benchmark) if benchmark is not None else None

    if key == "synthetic":
        synthetic_benchmark = requested_benchmark or "MIntRec"
        release_dir = ensure_release(synthetic_benchmark, data_dir=data_dir)
        return DataSource("release", release_dir, synthetic_benchmark, release_dir, is_synthetic=True)

    if key in _OFFICIAL_RELEASE_NAMES:
        official_benchmark = normalize_benchmark(key)
        layout = MINTREC_LAYOUT if official_benchmark == "MIntRec" else MINTREC2_LAYOUT
        if data_dir is None:
            raise ValueError(
                f"dataset={name!r} reads a local copy of the official {official_benchmark} release: pass "
                f"data_dir=<folder>, laid out as\n{layout}"
            )
        if requested_benchmark is not None and requested_benchmark != official_benchmark:
            raise ValueError(f"dataset={name!r} is the {official_benchmark} release, but benchmark={benchmark!r}")
        release_dir = Path(data_dir).expanduser()
        if not release_dir.is_dir():
            raise FileNotFoundError(
                f"data_dir {release_dir} is not a folder; dataset={name!r} reads the official {official_benchmark} "
                f"release from a folder laid out as\n{layout}"
            )
        is_synthetic = _holds_synthetic_release(release_dir)
        return DataSource("release", release_dir, official_benchmark, release_dir, is_synthetic)

    if data_dir is not None:
        raise ValueError(
            f"data_dir={os.fspath(data_dir)!r} is only read with dataset 'synthetic', 'mintrec' or 'mintrec2'; "
            f"dataset={name!r} names the data itself: leave data_dir out."
        )
    path = Path(name).expanduser()
    if path.is_dir():
        detected_benchmark = detect_release(path)
        if detected_benchmark is not None:
            if requested_benchmark is not None and requested_benchmark != detected_benchmark:
                raise ValueError(
                    f"{path} is laid out as a {detected_benchmark} release, but benchmark={benchmark!r}"
                )
            return DataSource("release", path, detected_benchmark, path, _holds_synthetic_release(path))
        if _is_parquet_folder(path):
            return DataSource("parquet", path, requested_benchmark, None, is_synthetic=False)
        raise ValueError(
            f"{path} is neither an official release folder nor a Parquet dataset folder.\n"
            f"MIntRec layout:\n{MINTREC_LAYOUT}\nMIntRec2.0 layout:\n{MINTREC2_LAYOUT}\n"
            f"Parquet layout: {_PARQUET_LAYOUT}"
        )
    # A Hub id is "name" or "owner/name"; anything else that looks like a path is a path that does not exist.
    looks_like_a_path = name.startswith((".", "/", "~")) or name.count("/") > 1
    if path.exists() or looks_like_a_path:
        raise FileNotFoundError(
            f"{name} is not a folder; expected an official release folder, a Parquet folder or a Hub dataset id"
        )
    return DataSource("hub", name, requested_benchmark, None, is_synthetic=False)


def load_any(
    dataset: Union[str, os.PathLike, DataSource],
    data_dir: Optional[Union[str, os.PathLike]] = None,
    benchmark: Optional[str] = None,
    include_out_of_scope: bool = False,
    cache_dir: Optional[str] = None,
    task: str = "intent",
    skip_bad_rows: bool = False,
) -> datasets.DatasetDict:
    """Loads a DatasetDict from any of the sources the project supports.

    `dataset` is a `DataSource` from `resolve_source`, or what `resolve_source` takes (then with its data_dir
    and benchmark arguments). A release folder is read by `load_mintrec` with include_out_of_scope, task and
    skip_bad_rows; a Parquet folder or Hub dataset is read by `datasets.load_dataset` and holds the splits and
    labels it was converted with (those three arguments do not apply to it). cache_dir is the `datasets` cache.
    """
    if isinstance(dataset, DataSource):
        if data_dir is not None or benchmark is not None:
            raise ValueError(
                "load_any(DataSource, ...): data_dir and benchmark were already applied by resolve_source; "
                "pass them to resolve_source instead"
            )
        source = dataset
    else:
        source = resolve_source(dataset, data_dir=data_dir, benchmark=benchmark)
    if source.kind == "release":
        return load_mintrec(source.release_dir, source.benchmark, include_out_of_scope, cache_dir, task, skip_bad_rows)
    return datasets.load_dataset(os.fspath(source.location), cache_dir=cache_dir)


def _holds_synthetic_release(folder: Path) -> bool:
    return (folder / METADATA_FILENAME).is_file()


def _is_parquet_folder(path: Path) -> bool:
    return any(path.glob("data/*.parquet")) or any(path.glob("*.parquet"))
