"""DyKenProcessor: turns utterances + audio/video into model inputs, from pre-extracted features or raw media.

    processor = DyKenProcessor.for_benchmark("MIntRec", tokenizer)          # 30 / 480 / 230
    batch = processor(text=["oh, great idea."], audio_features=[audio], video_features=[video])
    batch = processor(text=["oh, great idea."], audio=["clip.mp4"], videos=["clip.mp4"])  # features made here
    loader = DataLoader(dataset.with_format("numpy"), batch_size=16, collate_fn=processor.collate)

Text is tokenised by the wrapped tokenizer (truncated to `max_text_length` word pieces including
[CLS]/[SEP]). Each feature sequence (T, D) -- or (T, 1, D), as the MIntRec video pickles store
it -- is cut to its modality's max length and zero-padded at the END, as the official MIntRec /
MIntRec2.0 code does; the mask marks real frames and `*_lengths` keeps the true lengths after
truncation. padding="max_length" pads every batch to the max lengths (the official setting);
padding="longest" pads to the longest item of the batch (still truncating at the max lengths),
which is faster and gives the same logits since the model masks padding. Each call may ask for
its own `padding`, `truncation` and `max_length`, as transformers' tokenizers and processors take them.

Raw media, under the names transformers processors use: `audio=` (mono waveforms at 16 kHz, or clip
paths) and `videos=` ((T, H, W, 3) uint8 RGB frames, or clip paths). They become features through
`extraction_dyken` (the file next to this one), with the extractors that made the training features:
their ids are saved with the processor (`audio_feature_model`, `video_feature_model`; `for_benchmark`
sets the official ones). Reading clips and the video detector need PyAV and torchvision, imported
only when raw media are given.

The processor is saved / loaded with `save_pretrained` / `from_pretrained` (tokenizer files +
`processor_config.json` holding the max lengths, padding and extractor ids). The class is registered for
`AutoProcessor` (bottom of this file), so the saved folder also carries this file, `extraction_dyken.py`
and an `auto_map`, and `AutoProcessor.from_pretrained(folder, trust_remote_code=True)` works without the
project installed. This file therefore imports nothing from the project but its remote-code siblings.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Sequence

import numpy as np
from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessorMixin


# Official max lengths (text word pieces incl. [CLS]/[SEP], audio frames, video frames).
BENCHMARK_MAX_LENGTHS = {
    "MIntRec": {"max_text_length": 30, "max_audio_length": 480, "max_video_length": 230},
    "MIntRec2.0": {"max_text_length": 50, "max_audio_length": 400, "max_video_length": 180},
}
# The extractors that made each release's features, as `extraction_dyken` takes them: the speech model whose last
# hidden states are the audio features (a Hub id), and the torchvision weights of the Faster R-CNN ResNet-50-FPN whose
# speaker RoI features are the video features. MIntRec2.0's video features come from a Swin Transformer detector,
# which extraction_dyken does not reproduce: None, so that no clip is turned into features the model never saw.
BENCHMARK_FEATURE_MODELS = {
    "MIntRec": {"audio_feature_model": "facebook/wav2vec2-base-960h", "video_feature_model": "COCO_V1"},
    "MIntRec2.0": {"audio_feature_model": "microsoft/wavlm-base-plus", "video_feature_model": None},
}
PADDING_STRATEGIES = ("max_length", "longest")
AUDIO_SAMPLE_RATE = 16000  # wav2vec 2.0 and WavLM read 16 kHz speech: clips are decoded at this rate by default
# transformers' names for "truncate" and "do not truncate" (TruncationStrategy values), next to True / False.
TRUNCATE, DO_NOT_TRUNCATE = ("longest_first", "only_first"), "do_not_truncate"


def _import_extraction():
    """`extraction_dyken`, next to this file: a sibling module of a checkpoint's remote code, or a top-level module
    of the installed package. Imported on the first raw media only: feature input needs none of its dependencies."""
    # In a `try`: transformers checks the imports of a remote-code file, except those in `try` blocks. The relative
    # import line is also what makes transformers copy extraction_dyken.py with this file.
    try:
        from .extraction_dyken import read_clip
    except ImportError:
        if __package__:  # remote code: the file is there, so the error is one of its own imports (PyAV, ...)
            raise
        from extraction_dyken import read_clip
    return sys.modules[read_clip.__module__]


class _MediaExtractors:
    """The models that turn raw audio and video into features, built on first use. Only their ids are part of the
    processor's saved state: a copy (`save_pretrained` deep-copies the processor's attributes) starts empty."""

    def __init__(self):
        self.audio = None
        self.video = None
        self.device = None

    def __deepcopy__(self, memo):
        return _MediaExtractors()


class DyKenProcessor(ProcessorMixin):
    r"""Tokenizer + padding of audio/video feature sequences for DyKen-Hyena and its baselines; raw audio and video
    are turned into features first.

    Args:
        tokenizer: a BERT-family tokenizer (its only sub-processor: in transformers 5 the
            sub-processors are the `__init__` arguments named after a modality).
        max_text_length: word pieces per utterance, [CLS] and [SEP] included.
        max_audio_length, max_video_length: frames kept per clip.
        padding: "max_length" (pad to the max lengths, official) or "longest" (pad to the longest
            item of each batch).
        audio_feature_model: the speech model whose last hidden states are the audio features the model was
            trained on (a Hub id or a folder, `extraction_dyken.AudioFeatureExtractor(model_id=...)`);
            MIntRec: "facebook/wav2vec2-base-960h", MIntRec2.0: "microsoft/wavlm-base-plus". None: raw audio is
            refused.
        video_feature_model: the torchvision weights of the Faster R-CNN ResNet-50-FPN whose speaker RoI features
            are the video features (`extraction_dyken.VideoFeatureExtractor(weights=...)`); MIntRec: "COCO_V1".
            None (MIntRec2.0, whose Swin features cannot be made here): raw video is refused.
    """

    def __init__(
        self,
        tokenizer=None,
        max_text_length: int = 30,
        max_audio_length: int = 480,
        max_video_length: int = 230,
        padding: str = "max_length",
        audio_feature_model: str | None = None,
        video_feature_model: str | None = None,
    ):
        if padding not in PADDING_STRATEGIES:
            raise ValueError(f"padding must be one of {PADDING_STRATEGIES}, got {padding!r}")
        for name, value in [("max_text_length", max_text_length), ("max_audio_length", max_audio_length),
                            ("max_video_length", max_video_length)]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if max_text_length < 2:
            raise ValueError("max_text_length must leave room for [CLS] and [SEP] (>= 2)")
        for name, value in [("audio_feature_model", audio_feature_model), ("video_feature_model", video_feature_model)]:
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"{name} must be None or the name of the extractor's model, got {value!r}")
        self.max_text_length = max_text_length
        self.max_audio_length = max_audio_length
        self.max_video_length = max_video_length
        self.padding = padding
        self.audio_feature_model = audio_feature_model
        self.video_feature_model = video_feature_model
        self._media_extractors = _MediaExtractors()
        super().__init__(tokenizer)

    @classmethod
    def for_benchmark(cls, benchmark: str, tokenizer, **kwargs) -> "DyKenProcessor":
        """A processor with the official max lengths of "MIntRec" (30/480/230 text/audio/video) or
        "MIntRec2.0" (50/400/180) and the extractors of its released features; `kwargs` (e.g. padding="longest")
        override them."""
        if benchmark not in BENCHMARK_MAX_LENGTHS:
            raise ValueError(f"benchmark must be one of {list(BENCHMARK_MAX_LENGTHS)}, got {benchmark!r}")
        return cls(tokenizer, **{**BENCHMARK_MAX_LENGTHS[benchmark], **BENCHMARK_FEATURE_MODELS[benchmark], **kwargs})

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
        *,
        audio: Any = None,
        videos: Any = None,
        sampling_rate: int | None = None,
        padding: str | bool | None = None,
        truncation: bool | str | None = None,
        max_length: int | None = None,
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
            audio: instead of `audio_features`, B raw items turned into features here (see `extract_features`):
                (N,) mono waveforms at `sampling_rate`, clip paths (their audio track), or None. With a single
                `text`, one item alone.
            videos: instead of `video_features`, B raw items: (T, H, W, 3) uint8 RGB frames, clip paths, or None.
            sampling_rate: samples per second of the waveforms in `audio` (default: the audio model's, 16 kHz).
            padding: this call's padding, "max_length", "longest" or True (= "longest"); default: the processor's.
            truncation: True (default) cuts text and features at the max lengths; False refuses, naming the row,
                any text or sequence longer than them instead of cutting it.
            max_length: this call's longest text in word pieces, [CLS] and [SEP] included (default:
                `max_text_length`). The model refuses text longer than its `config.max_text_length`.

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
        padding = self._padding_strategy(padding)
        truncation = self._truncation(truncation)
        max_text_length = self._max_text_length(max_length)

        if audio is not None or videos is not None:
            for raw_name, raw, features_name, features in [("audio", audio, "audio_features", audio_features),
                                                           ("videos", videos, "video_features", video_features)]:
                if raw is not None and features is not None:
                    raise ValueError(f"pass {raw_name} (raw media) or {features_name} (extracted), not both")
            single_example = isinstance(text, str)
            extracted_audio, extracted_video = self.extract_features(
                audio=self._raw_items(audio, "audio", single_example, batch_size),
                videos=self._raw_items(videos, "videos", single_example, batch_size),
                sampling_rate=sampling_rate,
            )
            if audio is not None:
                audio_features = extracted_audio
            if videos is not None:
                video_features = extracted_video

        if not truncation:
            token_counts = [len(ids) for ids in self.tokenizer(texts, truncation=False)["input_ids"]]
            too_long = [row for row, count in enumerate(token_counts) if count > max_text_length]
            if too_long:
                row = too_long[0]
                raise ValueError(
                    f"text[{row}] has {token_counts[row]} word pieces ([CLS] and [SEP] included), more than "
                    f"max_length={max_text_length}; truncation=False refuses to cut it"
                )
        # padding="longest" still truncates at max_text_length.
        encoding = self.tokenizer(
            texts,
            padding=padding,
            truncation=True,
            max_length=max_text_length,
            # The model expects real tokens first (it does not check the layout while training): whatever the
            # tokenizer's own padding_side, every row is [CLS] ... [SEP] then padding, so no row is empty either.
            padding_side="right",
            return_token_type_ids=True,
            return_tensors="np",
        )
        data = {name: np.asarray(values, dtype=np.int64) for name, values in encoding.items()}

        for modality, features, max_frames in [("audio", audio_features, self.max_audio_length),
                                               ("video", video_features, self.max_video_length)]:
            if features is None:
                continue
            if len(features) != batch_size:
                raise ValueError(f"{modality}_features has {len(features)} items but text has {batch_size}")
            padded_batch = self._pad_sequences(features, max_frames, f"{modality}_features", padding, truncation)
            if padded_batch is None:  # no row has this modality
                continue
            padded, mask, lengths = padded_batch
            data[f"{modality}_features"] = padded
            data[f"{modality}_attention_mask"] = mask
            data[f"{modality}_lengths"] = lengths

        if labels is not None:
            data["labels"] = self._class_ids(labels, batch_size)
        return BatchFeature(data=data, tensor_type=return_tensors)

    # ------------------------------------------------------------------------------------------------- per-call options

    def _padding_strategy(self, padding) -> str:
        padding = getattr(padding, "value", padding)  # transformers' PaddingStrategy enum
        if padding is None:
            return self.padding
        if padding is True:
            return "longest"
        if isinstance(padding, str) and padding in PADDING_STRATEGIES:
            return padding
        raise ValueError(
            f"padding must be one of {PADDING_STRATEGIES} or True (= 'longest'), got {padding!r}: every row of a "
            "batch is padded to one length"
        )

    @staticmethod
    def _truncation(truncation) -> bool:
        truncation = getattr(truncation, "value", truncation)  # transformers' TruncationStrategy enum
        if truncation is None or truncation is True or truncation in TRUNCATE:
            return True
        if truncation is False or truncation == DO_NOT_TRUNCATE:
            return False
        raise ValueError(
            f"truncation must be True, False or one of {TRUNCATE + (DO_NOT_TRUNCATE,)}, got {truncation!r}")

    def _max_text_length(self, max_length) -> int:
        if max_length is None:
            return self.max_text_length
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
            raise ValueError(
                f"max_length must be an int >= 2 (word pieces, [CLS] and [SEP] included), got {max_length!r}")
        return max_length

    # ------------------------------------------------------------------------------------------------------- raw media

    @staticmethod
    def _raw_items(items, name: str, single_example: bool, batch_size: int) -> list | None:
        """`items` as a list of B entries; with a single utterance, one item may come alone (a waveform, a path)."""
        if items is None:
            return None
        if single_example and not isinstance(items, (list, tuple)):
            items = [items]
        items = list(items)
        if len(items) != batch_size:
            raise ValueError(f"{name} has {len(items)} items but text has {batch_size}")
        return items

    def set_media_extractors(self, audio=None, video=None, device=None) -> None:
        """Choose the models that turn raw media into features.

        Args:
            audio: an audio extractor to use instead of building `audio_feature_model`'s: a callable taking a list
                of (N,) waveforms (and `sample_rate=`) and returning a list of (T, D) arrays, such as
                `extraction_dyken.AudioFeatureExtractor(model=..., feature_extractor=...)`.
            video: a video extractor to use instead of building `video_feature_model`'s: a callable taking
                (T, H, W, 3) uint8 frames and returning ((T, 1, D) features, report), such as
                `extraction_dyken.VideoFeatureExtractor(detector=...)`.
            device: where the extractors built from the saved ids run (default: CUDA when available, else CPU).
        """
        if audio is not None:
            self._media_extractors.audio = audio
        if video is not None:
            self._media_extractors.video = video
        if device is not None:
            self._media_extractors.device = device

    @property
    def extracts_audio(self) -> bool:
        """Whether raw audio can become features: an extractor was set, or `audio_feature_model` names one."""
        return self._media_extractors.audio is not None or self.audio_feature_model is not None

    @property
    def extracts_video(self) -> bool:
        """Whether raw video can become features: an extractor was set, or `video_feature_model` names one."""
        return self._media_extractors.video is not None or self.video_feature_model is not None

    @property
    def audio_extractor(self):
        """The audio extractor: the one set with `set_media_extractors`, or `audio_feature_model`'s, built once."""
        if self._media_extractors.audio is None:
            if self.audio_feature_model is None:
                raise ValueError(
                    "this processor names no audio_feature_model, so raw audio cannot become the features its model "
                    "was trained on: pass audio_features, or set processor.audio_feature_model (MIntRec: "
                    "'facebook/wav2vec2-base-960h', MIntRec2.0: 'microsoft/wavlm-base-plus')"
                )
            extraction = _import_extraction()
            self._media_extractors.audio = extraction.AudioFeatureExtractor(
                model_id=self.audio_feature_model, device=self._media_extractors.device)
        return self._media_extractors.audio

    @property
    def video_extractor(self):
        """The video extractor: the one set with `set_media_extractors`, or `video_feature_model`'s, built once."""
        if self._media_extractors.video is None:
            if self.video_feature_model is None:
                raise ValueError(
                    "this processor names no video_feature_model, so raw video cannot become the features its model "
                    "was trained on (MIntRec2.0's Swin Transformer RoI features are not made by extraction_dyken): "
                    "pass video_features, or set processor.video_feature_model ('COCO_V1': MIntRec's Faster R-CNN)"
                )
            extraction = _import_extraction()
            self._media_extractors.video = extraction.VideoFeatureExtractor(
                weights=self.video_feature_model, device=self._media_extractors.device)
        return self._media_extractors.video

    def extract_features(self, audio: Sequence[Any] | None = None, videos: Sequence[Any] | None = None,
                         sampling_rate: int | None = None) -> tuple[list | None, list | None]:
        r"""Features of raw media, with the processor's extractors.

        Args:
            audio: items, each a (N,) mono waveform at `sampling_rate`, a clip path (str or PathLike: its audio
                track, resampled to the audio model's rate), a decoded `extraction_dyken.Clip`, or None.
            videos: items, each (T, H, W, 3) uint8 RGB frames, a clip path (every decoded frame), a `Clip`, or None.
            sampling_rate: samples per second of the waveforms given as arrays (default: the audio model's, 16 kHz).

        Returns:
            (audio_features, video_features): one (T, D) float32 array per audio item and one (T, 1, D) per video
            item, None where the item is None or empty (no samples, no frames, a clip without that stream): the
            batch then marks that row's modality as missing. None for an argument not given. A clip named in both
            lists is decoded once.
        """
        audio, videos = (None if items is None else list(items) for items in (audio, videos))
        # Decode every clip path once, at the audio model's rate when its audio is asked for.
        paths = [os.fspath(item) for item in (audio or []) + (videos or []) if _is_path(item)]
        if paths:
            clip_rate = AUDIO_SAMPLE_RATE
            if any(_is_path(item) for item in audio or []):
                clip_rate = int(getattr(self.audio_extractor, "sample_rate", AUDIO_SAMPLE_RATE))
            read_clip = _import_extraction().read_clip
            clips = {path: read_clip(path, sample_rate=clip_rate) for path in dict.fromkeys(paths)}
            if audio is not None:
                audio = [clips[os.fspath(item)] if _is_path(item) else item for item in audio]
            if videos is not None:
                videos = [clips[os.fspath(item)] if _is_path(item) else item for item in videos]

        audio_features = None if audio is None else self._audio_features(audio, sampling_rate)
        video_features = None
        if videos is not None:
            video_features = [None] * len(videos)
            for index, item in enumerate(videos):
                if item is None:
                    continue
                frames = item.frames if hasattr(item, "frames") else np.asarray(item)
                if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
                    raise ValueError(
                        f"videos[{index}] has shape {frames.shape} and dtype {frames.dtype}; expected (T, H, W, 3) "
                        "uint8 RGB frames, a clip path or None"
                    )
                if frames.shape[0] > 0:  # a clip without a video stream has (0, 0, 0, 3) frames
                    video_features[index], _report = self.video_extractor(frames)
        return audio_features, video_features

    def _audio_features(self, items: list, sampling_rate: int | None) -> list:
        """One (T, D) array per waveform or decoded clip (None for None, an empty waveform, a clip without audio),
        all waveforms in one call of the extractor, which batches them."""
        waveforms, rates = {}, {}  # by row
        for index, item in enumerate(items):
            if item is None:
                continue
            if hasattr(item, "waveform"):  # a decoded clip: its own rate (None: no audio stream)
                waveform, rate = item.waveform, item.sample_rate
            else:
                waveform, rate = np.asarray(item), sampling_rate
                if waveform.ndim != 1 or not (np.issubdtype(waveform.dtype, np.floating)
                                              or np.issubdtype(waveform.dtype, np.integer)):
                    raise ValueError(
                        f"audio[{index}] has shape {waveform.shape} and dtype {waveform.dtype}; expected a (N,) mono "
                        "waveform of numbers, a clip path or None"
                    )
            if waveform is not None and waveform.size > 0:
                waveforms[index], rates[index] = waveform, rate
        features = [None] * len(items)
        if not waveforms:
            return features
        extractor = self.audio_extractor
        model_rate = int(getattr(extractor, "sample_rate", AUDIO_SAMPLE_RATE))
        rates = {index: model_rate if rate is None else int(rate) for index, rate in rates.items()}
        if len(set(rates.values())) > 1:
            raise ValueError(f"audio: the waveforms have different sampling rates ({rates} by row); the audio model "
                             f"reads {model_rate} Hz: resample them first")
        minimum = int(getattr(extractor, "minimum_samples", 1))
        for index, waveform in waveforms.items():
            if waveform.size < minimum:
                raise ValueError(f"audio[{index}] has {waveform.size} samples; the audio model needs at least "
                                 f"{minimum} for one feature frame")
        extracted = extractor(list(waveforms.values()), sample_rate=next(iter(rates.values())))
        for index, row_features in zip(waveforms, extracted):
            features[index] = row_features
        return features

    # ---------------------------------------------------------------------------------------------------- batch layout

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

    @staticmethod
    def _pad_sequences(sequences, max_length: int, name: str, padding: str = "max_length",
                       truncation: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
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
            if not truncation and len(array) > max_length:
                raise ValueError(f"{name}[{index}] has {len(array)} frames, more than {max_length}; truncation=False "
                                 "refuses to cut it")
            arrays.append(array)
        if width_source is None:
            return None

        lengths = np.array([0 if array is None else min(len(array), max_length) for array in arrays], dtype=np.int64)
        padded_length = max_length if padding == "max_length" else int(lengths.max())
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


def _is_path(item) -> bool:
    return isinstance(item, (str, os.PathLike))


# save_pretrained copies this file (and the extraction_dyken.py it imports) next to the tokenizer files and writes
# `auto_map` into processor_config.json, as modeling_dyken.py does for the model.
DyKenProcessor.register_for_auto_class("AutoProcessor")

if __name__ == "processing_dyken":  # the installed package (not a Hub copy): AutoProcessor knows "dyken" directly
    try:  # (in a `try`: transformers checks a remote-code file's imports, and there this block never runs)
        from configuration_dyken import DyKenConfig
        from transformers import AutoConfig, AutoProcessor
    except ImportError:
        pass
    else:
        AutoConfig.register("dyken", DyKenConfig, exist_ok=True)
        AutoProcessor.register(DyKenConfig, DyKenProcessor, exist_ok=True)

__all__ = ["DyKenProcessor", "BENCHMARK_MAX_LENGTHS", "BENCHMARK_FEATURE_MODELS", "PADDING_STRATEGIES"]
