"""MIntRec / MIntRec2.0 for the Hugging Face `datasets` stack.

    from datasets_scripts import load_any, load_mintrec
    dataset = load_mintrec("/data/MIntRec")                                   # 20 intents
    dataset = load_mintrec("/data/MIntRec", task="binary")                    # Emotion / Goal
    dataset = load_mintrec("/data/MIntRec2.0", "MIntRec2.0", include_out_of_scope=True)
    dataset = load_any("synthetic")                 # the built-in synthetic release (official layout, cached)
    dataset = load_any("/data/mintrec-parquet")     # a release folder, a Parquet folder or a Hub dataset id

Modules, in layers (each imports only modules of the layers before it, so there is no import cycle):
  safe_pickle   restricted unpickling of the feature pickles
  builders      the official layout, `load_mintrec`                      (imports safe_pickle)
  synthetic     writes releases in that layout, `ensure_release`          (imports builders)
  convert       Parquet copy + dataset card                               (imports builders)
  sources       `resolve_source`, `load_any`: the kind of source, decided once (imports builders, synthetic)

Columns: id, text, label (ClassLabel, official order), the TSV metadata columns (strings),
audio_features Array2D((None, 768), float32), video_features Array2D((None, 256), float32).
`python -m datasets_scripts convert RAW_DIR OUT_DIR ...` writes a shareable Parquet copy.
Feature pickles are always read with the restricted unpickler of `safe_pickle`.
"""

from .builders import (
    AUDIO_FEATURE_DIM,
    MINTREC2_LABELS,
    MINTREC2_LABELS_WITH_OOS,
    MINTREC2_LAYOUT,
    MINTREC2_CITATION,
    MINTREC2_METADATA_COLUMNS,
    MINTREC2_OOS_LABEL,
    MINTREC_BINARY_LABELS,
    MINTREC_CITATION,
    MINTREC_INTENT_TO_BINARY,
    MINTREC_LABELS,
    MINTREC_LAYOUT,
    MINTREC_METADATA_COLUMNS,
    VIDEO_FEATURE_DIM,
    MIntRec2Builder,
    MIntRec2Config,
    MIntRecBuilder,
    MIntRecConfig,
    MIntRecFormatError,
    MissingReleaseFileError,
    detect_release,
    get_builder,
    load_mintrec,
    normalize_benchmark,
)
from .convert import convert_to_parquet
from .safe_pickle import MAX_ARRAY_ELEMENTS, InvalidArrayError, SafeUnpickler, UnsafePickleError, safe_load_file
from .sources import DataSource, load_any, resolve_source
from .synthetic import SyntheticReleaseMismatchError, ensure_release


__all__ = [
    "AUDIO_FEATURE_DIM",
    "MINTREC2_LABELS",
    "MINTREC2_LABELS_WITH_OOS",
    "MINTREC2_LAYOUT",
    "MINTREC2_CITATION",
    "MINTREC2_METADATA_COLUMNS",
    "MINTREC2_OOS_LABEL",
    "MINTREC_BINARY_LABELS",
    "MINTREC_CITATION",
    "MINTREC_INTENT_TO_BINARY",
    "MINTREC_LABELS",
    "MINTREC_LAYOUT",
    "MINTREC_METADATA_COLUMNS",
    "VIDEO_FEATURE_DIM",
    "MIntRec2Builder",
    "MIntRec2Config",
    "MIntRecBuilder",
    "MIntRecConfig",
    "MIntRecFormatError",
    "MissingReleaseFileError",
    "DataSource",
    "SyntheticReleaseMismatchError",
    "InvalidArrayError",
    "MAX_ARRAY_ELEMENTS",
    "SafeUnpickler",
    "UnsafePickleError",
    "convert_to_parquet",
    "detect_release",
    "ensure_release",
    "get_builder",
    "load_any",
    "load_mintrec",
    "normalize_benchmark",
    "resolve_source",
    "safe_load_file",
]
