"""DyKenProcessor: turns utterances + pre-extracted audio/video feature sequences into model inputs.

    processor = DyKenProcessor.for_benchmark("MIntRec", tokenizer)          # 30 / 480 / 230
    batch = processor(text=["oh, great idea."], audio_features=[audio], video_features=[video])
    loader = DataLoader(dataset.with_format("numpy"), batch_size=16, collate_fn=processor.collate)

Text is tokenised by the wrapped tokenizer (truncated to `max_text_length` word pieces including
[CLS]/[SEP]). Each feature sequence (T, D) -- or (T, 1, D), as the MIntRec video pickles store
it -- is cut to its modality's max length and zero-padded at the END, as the official MIntRec /
MIntRec2.0 code does; the mask marks real frames and `*_lengths` keeps the true lengths after
truncation. padding="max_length" pads every batch to the max lengths (the official setting);
padding="longest" pads to the longest item of the batch (still truncating at the max lengths),
which is faster and gives the same logits since the model masks padding.

The processor is saved / loaded with `save_pretrained` / `from_pretrained` (tokenizer files +
`processor_config.json` holding the max lengths and padding). The class is registered for
`AutoProcessor` (bottom of this file), so the saved folder also carries this file and an `auto_map`,
and `AutoProcessor.from_pretrained(folder, trust_remote_code=True)` works without the project
installed. This file therefore imports nothing from the project.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin


# Official max lengths (text word pieces incl. [CLS]/[SEP], audio frames, video frames).
BENCHMARK_MAX_LENGTHS = {
    "MIntRec": {"max_text_length": 30, "max_audio_length": 480, "max_video_length": 230},
    "MIntRec2.0": {"max_text_length": 50, "max_audio_length": 400, "max_video_length": 180},
}
PADDING_STRATEGIES = ("max_length", "longest")


class DyKenProcessor(ProcessorMixin):
    r"""Tokenizer + padding of audio/video feature sequences for DyKen-Hyena and its baselines.

    Args:
        tokenizer: a BERT-family tokenizer (its only sub-processor: in transformers 5 the
            sub-processors are the `__init__` arguments named after a modality).
        max_text_length: word pieces per utterance, [CLS] and [SEP] included.
        max_audio_length, max_video_length: frames kept per clip.
        padding: "max_length" (pad to the max lengths, official) or "longest" (pad to the longest
            item of each batch).
    """

    def __init__(
        self,
        tokenizer=None,
        max_text_length: int = 30,
        max_audio_length: int = 480,
        max_video_length: int = 230,
        padding: str = "max_length",
    ):
        if padding not in PADDING_STRATEGIES:
            raise ValueError(f"padding must be one of {PADDING_STRATEGIES}, got {padding!r}")
        for name, value in [("max_text_length", max_text_length), ("max_audio_length", max_audio_length),
                            ("max_video_length", max_video_length)]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if max_text_length < 2:
            raise ValueError("max_text_length must leave room for [CLS] and [SEP] (>= 2)")
        self.max_text_length = max_text_length
        self.max_audio_length = max_audio_length
        self.max_video_length = max_video_length
        self.padding = padding
        super().__init__(tokenizer)

    @classmethod
    def for_benchmark(cls, benchmark: str, tokenizer, **kwargs) -> "DyKenProcessor":
        """A processor with the official max lengths of "MIntRec" (30/480/230 text/audio/video) or
        "MIntRec2.0" (50/400/180); `kwargs` (e.g. padding="longest") override them."""
        if benchmark not in BENCHMARK_MAX_LENGTHS:
            raise ValueError(f"benchmark must be one of {list(BENCHMARK_MAX_LENGTHS)}, got {benchmark!r}")
        return cls(tokenizer, **{**BENCHMARK_MAX_LENGTHS[benchmark], **kwargs})

    @property
    def model_input_names(self) -> list[str]:
        return list(self.tokenizer.model_input_names) + [
            "audio_features", "audio_attention_mask", "video_features", "video_attention_mask"]

    def __call__(
        self,
        text: str | Sequence[str] | None = None,
        audio_features: Sequence[Any] | np.ndarray | None = None,
        video_features: Sequence[Any] | np.ndarray | None = None,
        labels: Sequence[int] | np.ndarray | None = None,
        return_tensors: str | None = "pt",
    ) -> BatchFeature:
        r"""Builds a batch.

        Args:
            text: one utterance or a list of B utterances.
            audio_features, video_features: B arrays (or nested lists) of shape (T, D) or
                (T, 1, D) with the same D for the whole batch, or one (B, T, D) array; finite values
                only. None leaves the modality out of the batch. A row that is None or has no frames
                (T = 0) lacks the modality: its mask is all zeros (length 0), which the model reads
                as an absent modality, and the other rows keep theirs.
            labels: B class ids (integers, or floats with integral values such as 3.0), returned as
                `labels`.
            return_tensors: "pt" (torch), "np" or None (numpy arrays / lists).

        Returns:
            BatchFeature with input_ids, attention_mask, token_type_ids (B, L);
            audio_features (B, Ta, Da) float32, audio_attention_mask (B, Ta) int64 (1 = real frame),
            audio_lengths (B,) int64; the same three for video; labels (B,) int64 when given.
        """
        if text is None:
            raise ValueError("text is required: DyKen-Hyena processes every utterance's words")
        texts = [text] if isinstance(text, str) else list(text)
        batch_size = len(texts)
        if batch_size == 0:
            raise ValueError("text has no examples: a batch needs at least one utterance")
        # padding="longest" still truncates at max_text_length.
        encoding = self.tokenizer(
            texts,
            padding=self.padding,
            truncation=True,
            max_length=self.max_text_length,
            # The model expects real tokens first (it does not check the layout while training): whatever the
            # tokenizer's own padding_side, every row is [CLS] ... [SEP] then padding, so no row is empty either.
            padding_side="right",
            return_token_type_ids=True,
            return_tensors="np",
        )
        data = {name: np.asarray(values, dtype=np.int64) for name, values in encoding.items()}

        for modality, features, max_length in [("audio", audio_features, self.max_audio_length),
                                                ("video", video_features, self.max_video_length)]:
            if features is None:
                continue
            if len(features) != batch_size:
                raise ValueError(f"{modality}_features has {len(features)} items but text has {batch_size}")
            padded_batch = self._pad_sequences(features, max_length, f"{modality}_features")
            if padded_batch is None:  # no row has this modality
                continue
            padded, mask, lengths = padded_batch
            data[f"{modality}_features"] = padded
            data[f"{modality}_attention_mask"] = mask
            data[f"{modality}_lengths"] = lengths

        if labels is not None:
            data["labels"] = self._class_ids(labels, batch_size)
        return BatchFeature(data=data, tensor_type=return_tensors)

    @staticmethod
    def _class_ids(labels, batch_size: int) -> np.ndarray:
        """`labels` as (B,) int64 class ids. A cast alone would turn 1.7 into 1, "3" into 3 and True into 1, so
        only integers and integral floats (3.0, as float label columns hold them) pass."""
        values = np.asarray(labels).reshape(-1)
        if len(values) != batch_size:
            raise ValueError(f"labels has {len(values)} items but text has {batch_size}")
        expected = "expected an integer class id (int64)"
        if values.dtype.kind not in "iuf":  # strings, bools, None, mixed or too large Python objects
            items = values.tolist()
            row = next((row for row, value in enumerate(items)
                        if isinstance(value, bool) or not isinstance(value, (int, float))), 0)
            raise ValueError(f"labels[{row}] is {items[row]!r}; {expected}")
        with np.errstate(invalid="ignore"):  # NaN, inf and out-of-range values are reported below
            class_ids = values.astype(np.int64)
        # A value survives the round trip only if it is an integer that int64 holds.
        changed = class_ids != values
        if changed.any():
            row = int(np.flatnonzero(changed)[0])
            raise ValueError(f"labels[{row}] is {values[row].item()!r}; {expected}")
        return class_ids

    def _pad_sequences(self, sequences, max_length: int, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Truncates to `max_length` and zero-pads at the end: (B, T, D) float32, mask (B, T), lengths (B,).

        A row that is None or has no frames lacks this modality: it gets length 0 and an all-zero mask, which the
        model reads as it reads an absent modality, while the other rows keep theirs. None when every row lacks it.
        The values are checked here, once, where the data enters, so the model need not check them on the device."""
        arrays = []  # None for a row without this modality
        width_source = None  # index of the first row that has frames: every row must have its width D
        for index, sequence in enumerate(sequences):
            if sequence is None:
                arrays.append(None)
                continue
            try:
                array = np.asarray(sequence, dtype=np.float32)  # no copy for float32 numpy input
            except (ValueError, TypeError) as error:
                raise ValueError(
                    f"{name}[{index}] is not a rectangular array of numbers (expected shape (T, D) or (T, 1, D)): {error}"
                ) from None
            if array.ndim >= 1 and array.shape[0] == 0:  # no frames, e.g. [] or shape (0, D)
                arrays.append(None)
                continue
            if array.ndim == 3 and array.shape[1] == 1:
                array = array[:, 0, :]  # MIntRec key-frame features are stored as (T, 1, D)
            if array.ndim != 2:
                raise ValueError(f"{name}[{index}] has shape {array.shape}; expected (T, D) or (T, 1, D)")
            if width_source is None:
                width_source = index
            elif array.shape[1] != arrays[width_source].shape[1]:
                raise ValueError(
                    f"{name}[{index}] has shape {array.shape}; expected (T, {arrays[width_source].shape[1]}) like "
                    f"{name}[{width_source}]"
                )
            arrays.append(array)
        if width_source is None:
            return None

        lengths = np.array([0 if array is None else min(len(array), max_length) for array in arrays], dtype=np.int64)
        padded_length = max_length if self.padding == "max_length" else int(lengths.max())
        padded = np.zeros((len(arrays), padded_length, arrays[width_source].shape[1]), dtype=np.float32)
        for index, (array, length) in enumerate(zip(arrays, lengths)):
            if array is not None:
                padded[index, :length] = array[:length]
        # One pass over the kept frames (~3 ms for 16 x 480 x 768): cheaper here than a host sync per training step.
        finite_rows = np.isfinite(padded).all(axis=(1, 2))
        if not finite_rows.all():
            raise ValueError(f"{name}: NaN or inf values in rows {np.flatnonzero(~finite_rows).tolist()}")
        mask = (np.arange(padded_length)[None, :] < lengths[:, None]).astype(np.int64)
        return padded, mask, lengths

    def collate(self, examples: Sequence[dict]) -> BatchFeature:
        """DataLoader `collate_fn`: a list of dataset rows (dicts with `text` and optionally
        `audio_features`, `video_features`, `label`) -> a batch of torch tensors. A modality is
        included when some row has it (a row without it is masked, see `__call__`); the labels when
        every row has them. Fastest with `dataset.with_format("numpy")` (rows then hold numpy
        arrays; plain Python lists of floats are ~10x slower to convert)."""
        if not examples:
            raise ValueError("collate() needs at least one example")

        def column(key):
            values = [example.get(key) for example in examples]
            return None if any(value is None for value in values) else values

        def features(key):  # None where a row lacks the modality: __call__ masks that row only
            values = [example.get(key) for example in examples]
            return None if all(value is None for value in values) else values

        labels = column("label") if "label" in examples[0] else column("labels")
        return self(
            text=[str(example["text"]) for example in examples],
            audio_features=features("audio_features"),
            video_features=features("video_features"),
            labels=labels,
            return_tensors="pt",
        )


# save_pretrained copies this file next to the tokenizer files and writes `auto_map` into
# processor_config.json, as modeling_dyken.py does for the model.
DyKenProcessor.register_for_auto_class("AutoProcessor")

__all__ = ["DyKenProcessor", "BENCHMARK_MAX_LENGTHS", "PADDING_STRATEGIES"]
