"""Audio and video features from raw clips, made the way the MIntRec / MIntRec2.0 releases made theirs.

A checkpoint trained on the official feature pickles expects the same features from a new clip:

    from extraction_dyken import AudioFeatureExtractor, VideoFeatureExtractor, read_clip

    clip = read_clip("S05_E16_329.mp4")                 # waveform (N,) at 16 kHz mono, frames (T, H, W, 3) RGB
    audio = AudioFeatureExtractor()([clip.waveform])[0]  # (T_audio, 768): wav2vec 2.0 base, ~50 frames/s
    video, report = VideoFeatureExtractor()(clip.frames)  # (T, 1, 256): one speaker RoI vector per frame

What each part reproduces:

- **Audio** (MIntRec): the clip's audio track resampled to 16 kHz mono, normalised by the model's own feature
  extractor (`AutoFeatureExtractor`: zero mean, unit variance per clip), through `facebook/wav2vec2-base-960h`
  (`AutoModel` = `Wav2Vec2Model`); the last hidden states, (T, 768), about 50 frames per second. MIntRec2.0 used
  WavLM the same way (`microsoft/wavlm-base-plus`): `AutoModel` loads either.
- **Video** (MIntRec): for every decoded frame, the speaker's box; a Faster R-CNN ResNet-50-FPN trained on COCO
  (torchvision's `fasterrcnn_resnet50_fpn`); the box's RoI features from the FPN (the detector's own
  `MultiScaleRoIAlign`, 7x7, 256 channels), averaged over the 7x7 grid: (1, 256) per frame, (T, 1, 256) per clip.
  The releases took the speaker boxes from human annotation or an active-speaker detector: pass them as `boxes`
  when you have them; without them the speaker is detected and tracked (`select_speaker_box` gives the rule).
  MIntRec2.0's video features come from a Swin-Transformer detector instead; this module does not reproduce them.

Every model and decoder comes from a library (PyAV decodes and resamples, `transformers` runs the speech model,
`torchvision` the detector and RoIAlign). The file imports nothing else of the DyKen-Hyena project, so a checkpoint
folder can carry it as remote code. PyAV and torchvision are imported only when a clip is read or a video
extractor is built; install them with `pip install "dyken-hyena[clips]"` next to a torch build they were compiled
against (torchvision 0.29 goes with torch 2.14).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch


__all__ = [
    "AUDIO_SAMPLE_RATE",
    "DEFAULT_AUDIO_MODEL",
    "Clip",
    "ClipError",
    "AudioFeatureExtractor",
    "VideoFeatureExtractor",
    "VideoReport",
    "read_clip",
    "probe_clip",
    "ClipStreams",
    "check_clip_dependencies",
    "select_speaker_box",
    "extract_audio_features",
    "extract_video_features",
    "transcribe",
]

AUDIO_SAMPLE_RATE = 16000  # wav2vec 2.0 and WavLM were trained on 16 kHz speech
DEFAULT_AUDIO_MODEL = "facebook/wav2vec2-base-960h"  # MIntRec's audio model; MIntRec2.0: microsoft/wavlm-base-plus
VIDEO_FEATURE_DIM = 256  # FPN channels of Faster R-CNN ResNet-50-FPN
COCO_PERSON_LABEL = 1  # "person" in torchvision's COCO category list

_CLIPS_EXTRA_HINT = (
    'install it with `pip install "dyken-hyena[clips]"` (PyAV and torchvision). torchvision must match the installed '
    "torch build: torchvision 0.29 goes with torch 2.14 (on a CPU-only machine install both from the CPU wheel index)"
)


def _import_av():
    try:
        import av
    except ImportError as error:
        raise ImportError(f"Reading clips needs PyAV (the `av` package): {_CLIPS_EXTRA_HINT}.") from error
    return av


def _import_torchvision():
    # Every torchvision import of this file is here, inside `try`: transformers' remote-code loader then does not
    # require torchvision from users who only extract audio.
    try:
        import torchvision
        import torchvision.models.detection  # fails when torchvision's operators do not match the torch build
        import torchvision.models.detection.transform  # noqa: F401
    except (ImportError, RuntimeError) as error:
        raise ImportError(
            f"Video features need torchvision (Faster R-CNN, RoIAlign), which could not be imported ({error}): "
            f"{_CLIPS_EXTRA_HINT}."
        ) from error
    return torchvision


def check_clip_dependencies() -> None:
    """Raise the ImportError above now if PyAV or torchvision is missing (e.g. before a long job writes anything)."""
    _import_av()
    _import_torchvision()


def _default_device(device: Union[str, torch.device, None]) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _autocast_dtype(device: torch.device, dtype: Optional[torch.dtype]) -> Optional[torch.dtype]:
    """The dtype to autocast to, or None for plain float32.

    None asks for the default: bfloat16 on a CUDA device that supports it (its exponent range is float32's, so
    nothing overflows; weights stay float32, autocast keeps the normalisations in float32), float32 elsewhere (on
    CPU, bf16 matmuls are slower than float32 ones on most processors)."""
    if dtype is None:
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if dtype == torch.float32:
        return None
    if dtype not in (torch.bfloat16, torch.float16):
        raise ValueError(f"dtype must be None, torch.float32, torch.bfloat16 or torch.float16, got {dtype!r}")
    return dtype


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return torch.autocast(device.type, enabled=False)
    return torch.autocast(device.type, dtype=dtype)


def _synchronize(device: torch.device) -> None:
    """Wait for the device, so that a stage's wall time is read after its work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------------
# Reading clips
# --------------------------------------------------------------------------------------------------


class ClipError(ValueError):
    """A clip file that cannot be read. `path` names the file, `reason` says what was wrong."""

    def __init__(self, path: Union[str, os.PathLike], reason: str):
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclasses.dataclass
class Clip:
    """A decoded clip.

    Attributes:
        waveform: (N,) float32, mono, at `sample_rate`; None when the file has no audio stream.
        sample_rate: samples per second of `waveform`.
        frames: (T, H, W, 3) uint8 RGB, every decoded video frame; shape (0, 0, 0, 3) when the file has no video.
        fps: the video stream's average frame rate (0.0 without video).
        path: the file the clip was read from.
    """

    waveform: Optional[np.ndarray]
    sample_rate: int
    frames: np.ndarray
    fps: float
    path: str

    @property
    def has_audio(self) -> bool:
        return self.waveform is not None and self.waveform.size > 0

    @property
    def has_video(self) -> bool:
        return self.frames.shape[0] > 0

    @property
    def audio_seconds(self) -> float:
        return 0.0 if self.waveform is None else self.waveform.size / self.sample_rate

    @property
    def video_seconds(self) -> float:
        return self.frames.shape[0] / self.fps if self.fps > 0 else 0.0

    @property
    def duration(self) -> float:
        """Seconds of the longer of the two streams."""
        return max(self.audio_seconds, self.video_seconds)


def read_clip(path: Union[str, os.PathLike], sample_rate: int = AUDIO_SAMPLE_RATE) -> Clip:
    """Decode a clip file (any container and codec FFmpeg reads: MP4 with H.264/AAC, MKV, AVI, ...) with PyAV.

    The audio track (the first audio stream) is resampled by FFmpeg (`av.AudioResampler`) to `sample_rate` Hz,
    mono, float32 (channels mixed down by FFmpeg's default matrix, which scales identical stereo channels by
    sqrt(2); the speech models' per-clip normalisation removes any such gain); every frame of the first video
    stream is converted to RGB. The file is read once: both streams are demuxed together.

    Returns:
        `Clip` with `waveform` (N,) float32 or None (no audio stream) and `frames` (T, H, W, 3) uint8 (T = 0 when
        there is no video stream).

    Raises:
        ClipError: the file does not exist, is not a media file FFmpeg can open, has neither audio nor video, or
            fails to decode (a truncated or corrupted stream); the message names the file and the cause.
    """
    av = _import_av()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ClipError(path, "no such file")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError as error:
        raise ClipError(path, f"not a readable media file ({error})") from error
    try:
        with container:
            video_stream = container.streams.video[0] if container.streams.video else None
            audio_stream = container.streams.audio[0] if container.streams.audio else None
            if video_stream is None and audio_stream is None:
                raise ClipError(path, "the file has neither an audio nor a video stream")
            if video_stream is not None:
                video_stream.thread_type = "AUTO"  # frame- and slice-threaded decoding
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            frames, audio_chunks = [], []
            streams = [stream for stream in (video_stream, audio_stream) if stream is not None]
            for packet in container.demux(streams):
                # A packet without data ends its stream: decoding it flushes the decoder's buffered frames.
                for frame in packet.decode():
                    if packet.stream is video_stream:
                        frames.append(frame.to_ndarray(format="rgb24"))
                    else:
                        audio_chunks.extend(chunk.to_ndarray().reshape(-1) for chunk in resampler.resample(frame))
            if audio_stream is not None:
                audio_chunks.extend(chunk.to_ndarray().reshape(-1) for chunk in resampler.resample(None))
            fps = 0.0
            if video_stream is not None:
                rate = video_stream.average_rate or video_stream.guessed_rate
                fps = float(rate) if rate else 0.0
    except ClipError:
        raise
    except av.FFmpegError as error:
        raise ClipError(path, f"decoding failed ({error})") from error
    waveform = None
    if audio_stream is not None:
        waveform = np.concatenate(audio_chunks) if audio_chunks else np.zeros(0, np.float32)
        waveform = waveform.astype(np.float32, copy=False)
    if frames:
        frames = np.stack(frames)
    else:
        frames = np.zeros((0, 0, 0, 3), dtype=np.uint8)
    if frames.shape[0] and fps <= 0:
        raise ClipError(path, "the video stream has no frame rate")
    return Clip(waveform=waveform, sample_rate=sample_rate, frames=frames, fps=fps, path=path)


@dataclasses.dataclass
class ClipStreams:
    """What `probe_clip` found in a file, without decoding it."""

    has_audio: bool
    has_video: bool
    duration: Optional[float]  # seconds, from the container; None when it does not say


def probe_clip(path: Union[str, os.PathLike]) -> ClipStreams:
    """Open a clip file and list its streams without decoding them (milliseconds per file): a quick check of many
    clips before a long extraction. A file that opens can still fail to decode; `read_clip` finds that.

    Raises:
        ClipError: the file does not exist or is not a media file FFmpeg can open."""
    av = _import_av()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ClipError(path, "no such file")
    try:
        with av.open(path, metadata_errors="ignore") as container:
            duration = None if container.duration is None else container.duration / av.time_base
            return ClipStreams(has_audio=bool(container.streams.audio), has_video=bool(container.streams.video),
                               duration=duration)  # fmt: skip
    except av.FFmpegError as error:
        raise ClipError(path, f"not a readable media file ({error})") from error


def _waveform_of(clip_or_waveform: Union[Clip, np.ndarray], sample_rate: int) -> tuple[np.ndarray, int]:
    if isinstance(clip_or_waveform, Clip):
        if not clip_or_waveform.has_audio:
            raise ValueError(f"{clip_or_waveform.path}: the clip has no audio (no audio stream, or an empty one)")
        return clip_or_waveform.waveform, clip_or_waveform.sample_rate
    return np.asarray(clip_or_waveform), sample_rate


# --------------------------------------------------------------------------------------------------
# Audio: wav2vec 2.0 / WavLM hidden states
# --------------------------------------------------------------------------------------------------


class AudioFeatureExtractor:
    r"""Last hidden states of a speech model (wav2vec 2.0, WavLM, HuBERT, ...) for each waveform.

    Args:
        model_id: a Hub id or a local folder holding the model and its feature extractor (`save_pretrained`).
            `facebook/wav2vec2-base-960h` reproduces MIntRec's features, `microsoft/wavlm-base-plus` MIntRec2.0's.
        device: where the model runs (default: CUDA when available, else CPU).
        dtype: None = bfloat16 autocast on a CUDA device that supports it, float32 elsewhere; `torch.float32`
            forces full precision; `torch.bfloat16` / `torch.float16` autocast to that dtype.
        model: an already built model (`AutoModel`-style: returns `last_hidden_state`); skips loading `model_id`.
        feature_extractor: an already built feature extractor; skips loading `model_id`'s.

    Calling it on a list of waveforms returns one (T_i, hidden_size) float32 array per waveform, in order.

    Batching never changes a clip's features beyond float rounding. Models whose feature extractor says they were
    trained with attention masks (`return_attention_mask=True`, e.g. wav2vec 2.0 large-lv60) get zero-padded
    batches with a mask. The others (wav2vec 2.0 base, whose first convolution is group-normalised over time, so
    padding would leak into every frame) are batched only with waveforms of exactly the same length, and run one
    at a time otherwise. Each clip keeps the frames its own length gives
    (`model._get_feat_extract_output_lengths`): 16,000 samples give 49 frames with the base models (a 25 ms
    window every 20 ms).
    """

    def __init__(
        self,
        model_id: str = DEFAULT_AUDIO_MODEL,
        device: Union[str, torch.device, None] = None,
        dtype: Optional[torch.dtype] = None,
        model: Optional[torch.nn.Module] = None,
        feature_extractor: Any = None,
    ):
        from transformers import AutoFeatureExtractor, AutoModel

        self.device = _default_device(device)
        self.autocast_dtype = _autocast_dtype(self.device, dtype)
        if feature_extractor is None:
            feature_extractor = AutoFeatureExtractor.from_pretrained(model_id)
        if model is None:
            model = AutoModel.from_pretrained(model_id)
        self.feature_extractor, self.model = feature_extractor, model
        self.model.to(self.device).eval()
        self.sample_rate = int(getattr(self.feature_extractor, "sampling_rate", AUDIO_SAMPLE_RATE))
        self.uses_attention_mask = bool(getattr(self.feature_extractor, "return_attention_mask", False))
        if not hasattr(self.model, "_get_feat_extract_output_lengths"):
            raise TypeError(
                f"{type(self.model).__name__} has no `_get_feat_extract_output_lengths`: expected a speech encoder "
                "such as Wav2Vec2Model, WavLMModel or HubertModel, whose frames follow from the number of samples"
            )

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def frames_per_second(self) -> float:
        """Feature frames per second of audio (50 for wav2vec 2.0 / WavLM base: one frame per 320 samples)."""
        stride = math.prod(getattr(self.model.config, "conv_stride", (320,)))
        return self.sample_rate / stride

    def num_frames(self, num_samples: Union[int, Sequence[int]]) -> np.ndarray:
        """Feature frames the model gives for waveforms of these lengths (the model's own formula)."""
        lengths = torch.as_tensor(np.atleast_1d(num_samples), dtype=torch.long)
        return self.model._get_feat_extract_output_lengths(lengths).cpu().numpy().astype(np.int64)

    @property
    def minimum_samples(self) -> int:
        """The fewest samples that give one feature frame (400 = 25 ms for the base models)."""
        kernels = getattr(self.model.config, "conv_kernel", None)
        strides = getattr(self.model.config, "conv_stride", None)
        if kernels is None or strides is None:
            return 1
        receptive_field, step = 1, 1
        for kernel, stride in zip(kernels, strides):
            receptive_field += (kernel - 1) * step
            step *= stride
        return receptive_field

    def _batches(self, lengths: Sequence[int], batch_size: int) -> list[list[int]]:
        """Indices grouped into batches, shortest first (similar lengths waste less padding); without attention
        masks, only waveforms of the same length share a batch."""
        batches: list[list[int]] = []
        for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
            last = batches[-1] if batches else None
            if last is not None and len(last) < batch_size and (
                self.uses_attention_mask or lengths[last[0]] == lengths[index]
            ):
                last.append(index)
            else:
                batches.append([index])
        return batches

    def _check_waveform(self, index: int, waveform: Any) -> np.ndarray:
        waveform = np.asarray(waveform)
        numeric = np.issubdtype(waveform.dtype, np.floating) or np.issubdtype(waveform.dtype, np.integer)
        if waveform.ndim != 1 or not numeric:
            raise ValueError(
                f"waveform {index}: expected a 1-D float array of mono samples at {self.sample_rate} Hz, got shape "
                f"{waveform.shape} and dtype {waveform.dtype}"
            )
        waveform = waveform.astype(np.float32, copy=False)
        if waveform.size < self.minimum_samples:
            milliseconds = 1000 * waveform.size / self.sample_rate
            minimum_milliseconds = 1000 * self.minimum_samples / self.sample_rate
            raise ValueError(
                f"waveform {index} has {waveform.size} samples ({milliseconds:.1f} ms); the model needs at least "
                f"{self.minimum_samples} ({minimum_milliseconds:.1f} ms) for one feature frame"
            )
        if not np.isfinite(waveform).all():
            raise ValueError(f"waveform {index} contains NaN or inf samples")
        return waveform

    def __call__(
        self, waveforms: Sequence[np.ndarray], sample_rate: int = AUDIO_SAMPLE_RATE, batch_size: int = 8
    ) -> list[np.ndarray]:
        """Features of each waveform.

        Args:
            waveforms: list of (N_i,) mono float arrays at `sample_rate` Hz.
            sample_rate: must be the model's (16 kHz for wav2vec 2.0 / WavLM); `read_clip` resamples to it.
            batch_size: waveforms per forward pass.

        Returns:
            list of (T_i, hidden_size) float32 arrays, T_i = `num_frames(N_i)`.
        """
        if isinstance(waveforms, np.ndarray) and waveforms.ndim == 1:
            raise ValueError("waveforms must be a list of 1-D arrays; wrap a single waveform in a list")
        if sample_rate != self.sample_rate:
            raise ValueError(
                f"the waveforms are at {sample_rate} Hz but the model expects {self.sample_rate} Hz: resample them "
                f"first (read_clip(path, sample_rate={self.sample_rate}) does)"
            )
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        waveforms = [self._check_waveform(index, waveform) for index, waveform in enumerate(waveforms)]
        lengths = [waveform.size for waveform in waveforms]
        frames = self.num_frames(lengths) if waveforms else np.zeros(0, np.int64)
        outputs: list[Optional[np.ndarray]] = [None] * len(waveforms)
        for batch in self._batches(lengths, batch_size):
            # return_attention_mask=True: the feature extractor then normalises each waveform over its own samples
            # only, whether or not the model itself is given the mask.
            inputs = self.feature_extractor(
                [waveforms[i] for i in batch], sampling_rate=self.sample_rate, padding="longest",
                return_attention_mask=True, return_tensors="pt",
            )  # fmt: skip
            model_inputs = {"input_values": inputs["input_values"].to(self.device)}
            if self.uses_attention_mask:
                model_inputs["attention_mask"] = inputs["attention_mask"].to(self.device)
            with torch.inference_mode(), _autocast(self.device, self.autocast_dtype):
                hidden = self.model(**model_inputs).last_hidden_state
            hidden = hidden.float().cpu().numpy()
            for row, index in enumerate(batch):
                outputs[index] = np.ascontiguousarray(hidden[row, : frames[index]])
        return outputs


# --------------------------------------------------------------------------------------------------
# Video: speaker RoI features from Faster R-CNN's FPN
# --------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class VideoReport:
    """What `VideoFeatureExtractor` did for one clip.

    Attributes:
        num_frames: frames given (= feature vectors returned).
        frames_without_speaker: frames with no speaker box (no confident person detected, or `None` given): their
            features were taken from the last speaker box, or from the whole frame before the first one.
        boxes: (T, 4) float32, the [x1, y1, x2, y2] box (pixels of the input frames) each frame's features come from.
        speaker_found: (T,) bool, False for the frames counted in `frames_without_speaker`.
        boxes_given: True when the boxes came from the caller, False when they were detected.
        timings: seconds spent per stage: "transform" (normalise and resize), "backbone" (ResNet-50 + FPN),
            "detection" (RPN + box head + speaker choice; 0 with given boxes), "roi_features" (RoIAlign + mean).
    """

    num_frames: int
    frames_without_speaker: int
    boxes: np.ndarray
    speaker_found: np.ndarray
    boxes_given: bool
    timings: dict


def _box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one [x1, y1, x2, y2] box with each row of boxes (N, 4)."""
    if boxes.shape[0] == 0:
        return np.zeros(0, np.float32)
    top_left = np.maximum(box[:2], boxes[:, :2])
    bottom_right = np.minimum(box[2:], boxes[:, 2:])
    intersection = np.clip(bottom_right - top_left, 0, None).prod(axis=1)
    area = (box[2:] - box[:2]).prod()
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(axis=1)
    return intersection / np.maximum(area + areas - intersection, 1e-9)


def select_speaker_box(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    previous_box: Optional[np.ndarray] = None,
    person_label: int = COCO_PERSON_LABEL,
    score_threshold: float = 0.5,
    track_iou_threshold: float = 0.3,
) -> Optional[np.ndarray]:
    """The speaker's box among one frame's detections, or None when no confident person was detected.

    The rule: the candidates are the detected persons (`labels == person_label`) with `scores >= score_threshold`.
    Given the previous frame's speaker box, the candidate that overlaps it most is kept if that IoU is at least
    `track_iou_threshold` (the same person, followed through the clip, also when someone else scores higher);
    otherwise (first frame, a cut, the speaker left) the highest-scoring candidate.

    Args:
        boxes: (N, 4) [x1, y1, x2, y2] detections; scores: (N,); labels: (N,) category ids.
        previous_box: (4,) the previous frame's speaker box, or None.

    Returns:
        (4,) float32 box, or None.
    """
    boxes, scores, labels = np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(scores), np.asarray(labels)
    confident = (labels == person_label) & (scores >= score_threshold)
    if not confident.any():
        return None
    boxes, scores = boxes[confident], scores[confident]
    if previous_box is not None:
        overlaps = _box_iou(np.asarray(previous_box, np.float32), boxes)
        best = int(np.argmax(overlaps))
        if overlaps[best] >= track_iou_threshold:
            return boxes[best]
    return boxes[int(np.argmax(scores))]


class VideoFeatureExtractor:
    r"""Speaker RoI features per frame from a Faster R-CNN ResNet-50-FPN (torchvision), as MIntRec's video features.

    For a batch of frames: the detector's own transform (ImageNet normalisation, resize to its `min_size` /
    `max_size`, 800 / 1333 by default), its ResNet-50 + FPN backbone, then the detector's `box_roi_pool` (RoIAlign
    7x7 over the FPN levels, 256 channels) on each frame's speaker box, averaged over the 7x7 grid: one 256-d
    vector per frame.

    Args:
        weights: torchvision weights of `fasterrcnn_resnet50_fpn`: "DEFAULT" / "COCO_V1" (COCO, as the releases) or
            a `FasterRCNN_ResNet50_FPN_Weights`; None builds random weights (timing, tests; nothing downloaded).
        device: where the detector runs (default: CUDA when available, else CPU).
        dtype: None = the backbone under bfloat16 autocast on a CUDA device that supports it, float32 elsewhere;
            `torch.float32` forces full precision. The region proposals, box head and RoIAlign always run in
            float32 (box regression needs its precision).
        detector: an already built torchvision `FasterRCNN` (any backbone with an FPN and a `box_roi_pool`);
            `weights` and `detector_kwargs` are then unused.
        person_score_threshold: detections of a person below this score are not speaker candidates.
        track_iou_threshold: see `select_speaker_box`.
        **detector_kwargs: passed to `fasterrcnn_resnet50_fpn`, e.g. `min_size=400, max_size=667` (faster, but the
            features then differ from the releases').

    Calling it on (T, H, W, 3) uint8 RGB frames returns ((T, 1, 256) float32 features, `VideoReport`).
    Speaker boxes: given ones are used as they are (a `None` entry = no speaker annotated for that frame); without
    them each frame's persons are detected and the speaker is chosen by `select_speaker_box`, following the
    previous frame's speaker. A frame without a speaker box reuses the last speaker box (a missed detection is
    more often blur or occlusion than a new shot), or the whole frame before the first one; such frames are
    counted in `VideoReport.frames_without_speaker`.
    """

    def __init__(
        self,
        weights: Any = "DEFAULT",
        device: Union[str, torch.device, None] = None,
        dtype: Optional[torch.dtype] = None,
        detector: Optional[torch.nn.Module] = None,
        person_score_threshold: float = 0.5,
        track_iou_threshold: float = 0.3,
        **detector_kwargs,
    ):
        detection = _import_torchvision().models.detection
        self.device = _default_device(device)
        self.autocast_dtype = _autocast_dtype(self.device, dtype)
        self.person_label = COCO_PERSON_LABEL
        if detector is None:
            if weights is None:
                detector = detection.fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None, **detector_kwargs)
            else:
                weights = detection.FasterRCNN_ResNet50_FPN_Weights.verify(weights)
                detector = detection.fasterrcnn_resnet50_fpn(weights=weights, **detector_kwargs)
                self.person_label = weights.meta["categories"].index("person")
        elif detector_kwargs:
            raise ValueError(f"detector_kwargs {sorted(detector_kwargs)} apply only when the detector is built here")
        for part in ("transform", "backbone", "rpn", "roi_heads"):
            if not hasattr(detector, part):
                raise TypeError(f"detector must be a torchvision GeneralizedRCNN (FasterRCNN); it has no `{part}`")
        self.detector = detector.to(self.device).eval()
        self.person_score_threshold = float(person_score_threshold)
        self.track_iou_threshold = float(track_iou_threshold)

    # ---- boxes ------------------------------------------------------------------------------------
    @staticmethod
    def _check_boxes(boxes: Any, num_frames: int, height: int, width: int) -> list[Optional[np.ndarray]]:
        """Given boxes as a list of (4,) float32 boxes clipped to the frame, or None for a frame without one."""
        if isinstance(boxes, np.ndarray) and boxes.ndim == 2:
            boxes = [None if np.isnan(row).all() else row for row in boxes]  # NaN rows = no box
        if len(boxes) != num_frames:
            raise ValueError(
                f"boxes: expected one box (or None) per frame, {num_frames} frames, got {len(boxes)} boxes"
            )
        checked: list[Optional[np.ndarray]] = []
        for index, box in enumerate(boxes):
            if box is None:
                checked.append(None)
                continue
            array = np.asarray(box, dtype=np.float64).reshape(-1)
            if array.shape != (4,) or not np.isfinite(array).all():
                raise ValueError(f"boxes[{index}]: expected [x1, y1, x2, y2] in pixels or None, got {box!r}")
            clipped = np.array([min(max(array[0], 0), width), min(max(array[1], 0), height),
                                min(max(array[2], 0), width), min(max(array[3], 0), height)])  # fmt: skip
            if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
                raise ValueError(
                    f"boxes[{index}] = {list(array)} is empty or lies outside the {width}x{height} frame; expected "
                    "[x1, y1, x2, y2] in pixels with x1 < x2 and y1 < y2"
                )
            checked.append(clipped.astype(np.float32))
        return checked

    def _detect(self, image_list, features, original_sizes) -> list[dict]:
        """The detector's detections per image, in the pixels of the input frames (boxes, scores, labels)."""
        proposals, _ = self.detector.rpn(image_list, features)
        detections, _ = self.detector.roi_heads(features, proposals, image_list.image_sizes)
        detections = self.detector.transform.postprocess(detections, image_list.image_sizes, original_sizes)
        return [{key: value.float().cpu().numpy() if key != "labels" else value.cpu().numpy()
                 for key, value in detection.items()} for detection in detections]  # fmt: skip

    # ---- main -------------------------------------------------------------------------------------
    def __call__(self, frames: np.ndarray, boxes: Any = None, batch_size: int = 8) -> tuple[np.ndarray, VideoReport]:
        """RoI features of the speaker in every frame.

        Args:
            frames: (T, H, W, 3) uint8 RGB frames (`Clip.frames`).
            boxes: None (detect the speaker), or the speaker box of each frame: a list of T entries, each
                [x1, y1, x2, y2] in pixels or None, or a (T, 4) array with NaN rows for None.
            batch_size: frames per detector pass.

        Returns:
            features (T, 1, 256) float32, the MIntRec pickles' layout; `VideoReport`.
        """
        resize_boxes = _import_torchvision().models.detection.transform.resize_boxes
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"frames: expected (T, H, W, 3) uint8 RGB frames, got shape {frames.shape} and dtype {frames.dtype}"
            )
        num_frames, height, width = frames.shape[:3]
        if num_frames == 0:
            raise ValueError("frames: the clip has no video frames")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        given = None if boxes is None else self._check_boxes(boxes, num_frames, height, width)
        whole_frame = np.array([0, 0, width, height], dtype=np.float32)
        features = np.empty((num_frames, VIDEO_FEATURE_DIM), dtype=np.float32)
        used_boxes = np.empty((num_frames, 4), dtype=np.float32)
        speaker_found = np.zeros(num_frames, dtype=bool)
        timings = dict.fromkeys(("transform", "backbone", "detection", "roi_features"), 0.0)
        last_box: Optional[np.ndarray] = None
        original_sizes = [(height, width)] * num_frames

        for start in range(0, num_frames, batch_size):
            stop = min(start + batch_size, num_frames)
            clock = time.perf_counter()
            with torch.inference_mode():
                pixels = torch.from_numpy(frames[start:stop]).to(self.device).permute(0, 3, 1, 2).float().div_(255)
                image_list, _ = self.detector.transform(list(pixels))
                _synchronize(self.device)
                timings["transform"] += time.perf_counter() - clock

                clock = time.perf_counter()
                with _autocast(self.device, self.autocast_dtype):
                    feature_maps = self.detector.backbone(image_list.tensors)
                feature_maps = {name: level.float() for name, level in feature_maps.items()}
                _synchronize(self.device)
                timings["backbone"] += time.perf_counter() - clock

                clock = time.perf_counter()
                detections = None
                if given is None:
                    detections = self._detect(image_list, feature_maps, original_sizes[start:stop])
                # In frame order: each frame's speaker follows the previous frame's.
                for offset in range(stop - start):
                    frame = start + offset
                    if detections is None:
                        box = given[frame]
                    else:
                        detection = detections[offset]
                        box = select_speaker_box(
                            detection["boxes"], detection["scores"], detection["labels"], previous_box=last_box,
                            person_label=self.person_label, score_threshold=self.person_score_threshold,
                            track_iou_threshold=self.track_iou_threshold,
                        )  # fmt: skip
                    if box is not None:
                        speaker_found[frame] = True
                        last_box = box
                    used_boxes[frame] = last_box if last_box is not None else whole_frame
                _synchronize(self.device)
                timings["detection"] += time.perf_counter() - clock

                clock = time.perf_counter()
                # The boxes are in the pixels of the input frames; the feature maps are of the resized images.
                regions = [
                    resize_boxes(torch.from_numpy(used_boxes[frame][None]).to(self.device), [height, width], list(size))
                    for frame, size in zip(range(start, stop), image_list.image_sizes)
                ]
                pooled = self.detector.roi_heads.box_roi_pool(feature_maps, regions, image_list.image_sizes)
                features[start:stop] = pooled.mean(dim=(2, 3)).float().cpu().numpy()
                _synchronize(self.device)
                timings["roi_features"] += time.perf_counter() - clock

        report = VideoReport(
            num_frames=num_frames,
            frames_without_speaker=int((~speaker_found).sum()),
            boxes=used_boxes,
            speaker_found=speaker_found,
            boxes_given=given is not None,
            timings=timings,
        )
        return features[:, None, :], report


# --------------------------------------------------------------------------------------------------
# Convenience functions
# --------------------------------------------------------------------------------------------------


def extract_audio_features(
    clip_or_waveform: Union[Clip, np.ndarray],
    extractor: Optional[AudioFeatureExtractor] = None,
    sample_rate: int = AUDIO_SAMPLE_RATE,
    **kwargs,
) -> np.ndarray:
    """(T, hidden_size) float32 features of one clip (or mono waveform at `sample_rate`).

    `extractor` reuses a loaded model; without it one is built from `kwargs` (`AudioFeatureExtractor`'s
    arguments) for this call only."""
    waveform, rate = _waveform_of(clip_or_waveform, sample_rate)
    if extractor is None:
        extractor = AudioFeatureExtractor(**kwargs)
    elif kwargs:
        raise ValueError(f"{sorted(kwargs)}: arguments for a new extractor, but `extractor` was given")
    return extractor([waveform], sample_rate=rate)[0]


def extract_video_features(
    clip_or_frames: Union[Clip, np.ndarray],
    boxes: Any = None,
    extractor: Optional[VideoFeatureExtractor] = None,
    batch_size: int = 8,
    **kwargs,
) -> tuple[np.ndarray, VideoReport]:
    """((T, 1, 256) float32 features, `VideoReport`) of one clip's (or (T, H, W, 3) uint8 RGB) frames.

    `boxes`: the speaker box per frame, see `VideoFeatureExtractor.__call__`. `extractor` reuses a loaded detector;
    without it one is built from `kwargs` (`VideoFeatureExtractor`'s arguments) for this call only."""
    if isinstance(clip_or_frames, Clip):
        if not clip_or_frames.has_video:
            raise ValueError(f"{clip_or_frames.path}: the clip has no video frames")
        frames = clip_or_frames.frames
    else:
        frames = clip_or_frames
    if extractor is None:
        extractor = VideoFeatureExtractor(**kwargs)
    elif kwargs:
        raise ValueError(f"{sorted(kwargs)}: arguments for a new extractor, but `extractor` was given")
    return extractor(frames, boxes=boxes, batch_size=batch_size)


def transcribe(clip_or_waveform: Union[Clip, np.ndarray], asr_model: Any, sample_rate: int = AUDIO_SAMPLE_RATE) -> str:
    """The transcription of a clip's speech, through `transformers.pipeline("automatic-speech-recognition")`.

    Args:
        clip_or_waveform: a `Clip` or a (N,) mono waveform at `sample_rate` Hz.
        asr_model: a Hub id or local folder (a pipeline is built for this call), or an already built ASR pipeline
            (reuse one across clips: `pipeline("automatic-speech-recognition", model=...)`).

    Returns:
        the text, with runs of whitespace collapsed to single spaces (a TSV field holds no tab or newline).
    """
    waveform, rate = _waveform_of(clip_or_waveform, sample_rate)
    if isinstance(asr_model, (str, os.PathLike)):
        from transformers import pipeline

        asr_model = pipeline("automatic-speech-recognition", model=os.fspath(asr_model))
    result = asr_model({"raw": np.asarray(waveform, dtype=np.float32), "sampling_rate": rate})
    return " ".join(str(result["text"]).split())
