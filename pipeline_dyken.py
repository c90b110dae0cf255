# Copyright 2026 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""The `multimodal-intent-recognition` pipeline: an utterance with its audio and video -> its intent.

    from transformers import pipeline

    classifier = pipeline(model="outputs/dyken/best_checkpoint", trust_remote_code=True)
    classifier({"text": "oh, that's a great idea.", "video": "clip.mp4"})  # features made from the clip
    # [{'label': 'Taunt', 'score': 0.87}]
    classifier({"text": "oh, that's a great idea.", "audio_features": audio, "video_features": video})  # pre-extracted
    classifier([example_1, example_2], top_k=3, batch_size=8)  # one list of results per example

Every checkpoint the trainer saves names this pipeline in its `config.json` (`custom_pipelines`, which
`Pipeline.save_pretrained` writes for a pipeline registered with `PIPELINE_REGISTRY`) and carries this file, so
`pipeline(model=checkpoint, trust_remote_code=True)` finds the task and its code without the package installed. The
checkpoint's processor (`DyKenProcessor`) tokenises and pads; raw media become features with the extractors whose
ids the processor saved (`extraction_dyken.py`, needing PyAV and torchvision).

Results follow the text-classification pipeline's `top_k` convention: a list of `{"label", "score"}` dicts, best
first (`top_k` of them, 1 by default, every intent with `top_k=None`), the score being the softmax probability of
the intent. A MIntRec2.0 model trained with out-of-scope detection saves its fitted detector in `config.json`
(`out_of_scope_detector`); an utterance it rejects comes first as `{"label": "UNK", "score": s}`, `s` being the
detector's out-of-scope score, followed by the best intents. The decision rule is the one the training job scored
(`dyken_hyena.metrics`: `doc_predict`, `max_softmax_predict`), written out here for code that travels alone.
"""

from __future__ import annotations

import collections.abc
import functools
import os
from typing import Any

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.pt_utils import PipelineDataset, PipelineIterator
from transformers.utils import logging


logger = logging.get_logger(__name__)

TASK = "multimodal-intent-recognition"
INPUT_KEYS = ("text", "audio", "video", "audio_features", "video_features")
OUT_OF_SCOPE_METHODS = ("doc", "max_softmax")
# The processor options a call may set; they apply when the batch is built, after each example's preprocessing.
PROCESSOR_OPTIONS = ("padding", "truncation", "max_length")


# ---------------------------------------------------------------------------------------------------------------
# Out-of-scope detection: the rules of dyken_hyena.metrics (`doc_predict`, `max_softmax_predict`), in numpy
# ---------------------------------------------------------------------------------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of (N, K) float64 logits, computed as `scipy.special.softmax` computes it."""
    shifted = np.exp(logits - np.amax(logits, axis=-1, keepdims=True))
    return shifted / np.sum(shifted, axis=-1, keepdims=True)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function of float64 logits (DOC scores each class independently)."""
    with np.errstate(over="ignore"):  # exp(-x) overflows to inf for x < -709: the score is then exactly 0
        return 1.0 / (1.0 + np.exp(-logits))


def read_out_of_scope_detector(config) -> dict | None:
    """The out-of-scope detector saved in a checkpoint's config (`config.out_of_scope_detector`), checked, or None.

    Saved by the training job for a model trained with out-of-scope data:
    `{"method": "doc", "thresholds": [K floats], "label": "UNK"}` (DOC: one threshold per intent on the sigmoid
    scale, fitted on the training logits) or `{"method": "max_softmax", "threshold": t, "label": "UNK"}`."""
    detector = getattr(config, "out_of_scope_detector", None)
    if detector is None:
        return None
    where = "config.out_of_scope_detector"
    if not isinstance(detector, dict) or detector.get("method") not in OUT_OF_SCOPE_METHODS:
        raise ValueError(f"{where} must be a dict whose 'method' is one of {OUT_OF_SCOPE_METHODS}, got {detector!r}")
    label = detector.get("label")
    if not isinstance(label, str) or not label:
        raise ValueError(f"{where}['label'] must name the out-of-scope class (e.g. 'UNK'), got {label!r}")
    num_labels = config.num_labels
    if detector["method"] == "doc":
        thresholds = np.asarray(detector.get("thresholds"), dtype=np.float64)
        if thresholds.shape != (num_labels,) or not np.isfinite(thresholds).all():
            raise ValueError(f"{where}['thresholds'] must hold {num_labels} finite numbers (one per intent), got "
                             f"{detector.get('thresholds')!r}")
        return {"method": "doc", "thresholds": thresholds, "label": label}
    threshold = detector.get("threshold")
    if not isinstance(threshold, (int, float)) or isinstance(threshold, bool) or not np.isfinite(threshold):
        raise ValueError(f"{where}['threshold'] must be a number (the max-softmax probability), got {threshold!r}")
    return {"method": "max_softmax", "threshold": float(threshold), "label": label}


def out_of_scope_decisions(logits: np.ndarray, detector: dict) -> tuple[np.ndarray, np.ndarray]:
    """K+1-way decisions of a detector read by `read_out_of_scope_detector`.

    Args:
        logits: (N, K) logits.

    Returns:
        predictions (N,) int64 in 0..K, K meaning out of scope, as `doc_predict` / `max_softmax_predict` return
        them; out-of-scope scores (N,) float64, as `doc_oos_scores` / `max_softmax_oos_scores` (higher = more
        likely out of scope).
    """
    logits = np.asarray(logits, dtype=np.float64)
    num_labels = logits.shape[-1]
    rows = np.arange(len(logits))
    if detector["method"] == "doc":
        # DOC (the official MIntRec2.0 rule): the top sigmoid score must exceed its class's threshold.
        scores = sigmoid(logits)
        top_class = scores.argmax(axis=-1)  # ties go to the lowest id, as in doc_predict
        top_score = scores[rows, top_class]
        predictions = np.where(top_score > detector["thresholds"][top_class], top_class, num_labels)
    else:
        # Max-softmax: out of scope when the top probability is strictly below the threshold.
        scores = softmax(logits)
        top_class = scores.argmax(axis=-1)
        top_score = scores[rows, top_class]
        predictions = np.where(top_score < detector["threshold"], num_labels, top_class)
    return predictions.astype(np.int64), 1.0 - top_score


# ---------------------------------------------------------------------------------------------------------------
# The pipeline
# ---------------------------------------------------------------------------------------------------------------


def _is_clip(item) -> bool:
    """A clip path or a decoded `extraction_dyken.Clip` (both tracks), rather than frames alone."""
    return isinstance(item, (str, os.PathLike)) or (hasattr(item, "frames") and hasattr(item, "waveform"))


class MultimodalIntentRecognitionPipeline(Pipeline):
    r"""Intent recognition from an utterance's text, audio and video with a DyKen-Hyena (or MAG-BERT, text-only BERT)
    checkpoint.

    Each input is a dict, or a list of them for a batch:

    - `"text"` (`str`, required): the utterance (its transcript);
    - `"video"`: a clip file (`str` or `os.PathLike`), a decoded `extraction_dyken.Clip`, or (T, H, W, 3) uint8 RGB
      frames. A clip also gives the audio, unless `"audio"` or `"audio_features"` is given;
    - `"audio"`: a (N,) mono waveform at `sampling_rate` (16 kHz by default) or a clip file;
    - `"audio_features"`: (T, D) features, e.g. a row of the released MIntRec pickles;
    - `"video_features"`: (T, D) or (T, 1, D) features.

    A modality may be left out: the model then reads it as missing. A plain string is an utterance without audio
    and video. Raw media go through the extractors the checkpoint's processor names; a checkpoint whose video features
    cannot be made here (MIntRec2.0's Swin features) reads a clip's sound only, with a warning.

    Args (when building it, besides `Pipeline`'s):
        audio_extractor, video_extractor: extractors to use instead of building those the processor names (see
            `DyKenProcessor.set_media_extractors`), e.g. models already in memory.

    Call arguments:
        top_k (`int` or `None`, defaults to 1): how many results per input; `None` returns every intent.
        out_of_scope (`bool`, defaults to `True`): apply the checkpoint's out-of-scope detector, when it has one.
        sampling_rate (`int`, *optional*): samples per second of waveforms given as arrays.
        padding, truncation, max_length: the processor's options for the batch (see `DyKenProcessor.__call__`).
        batch_size, num_workers: as for every pipeline (preprocessing, feature extraction included, runs in the
            DataLoader's workers; with raw media on a GPU keep `num_workers=0`: CUDA does not run in forked workers).

    Returns:
        for one input, a list of `{"label": str, "score": float}`, best first; for a list of inputs, one such list
        per input.
    """

    _load_processor = True
    # The processor holds the tokenizer; nothing else is loaded.
    _load_tokenizer = False
    _load_feature_extractor = False
    _load_image_processor = False
    _load_video_processor = False

    def __init__(self, *args, audio_extractor=None, video_extractor=None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.processor is None or not hasattr(self.processor, "extract_features"):
            raise ValueError(
                f"{type(self).__name__} needs the checkpoint's DyKenProcessor (processor_config.json next to the "
                f"model), got processor={self.processor!r}"
            )
        self.processor.set_media_extractors(audio=audio_extractor, video=video_extractor, device=self.device)
        self.out_of_scope_detector = read_out_of_scope_detector(self.model.config)
        self._warned_video_without_extractor = False

    def _sanitize_parameters(self, top_k="", out_of_scope=None, sampling_rate=None, padding=None, truncation=None,
                             max_length=None):
        preprocess_params, postprocess_params = {}, {}
        if sampling_rate is not None:
            preprocess_params["sampling_rate"] = sampling_rate
        # Processor options travel with the preprocessing parameters: `get_iterator` hands them to the collate step.
        for name, value in [("padding", padding), ("truncation", truncation), ("max_length", max_length)]:
            if value is not None:
                preprocess_params[name] = value
        if top_k != "":  # "" = not given (None means "every intent", as in the text-classification pipeline)
            if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1):
                raise ValueError(f"top_k must be a positive int or None (every intent), got {top_k!r}")
            postprocess_params["top_k"] = top_k
        if out_of_scope is not None:
            postprocess_params["out_of_scope"] = bool(out_of_scope)
        return preprocess_params, {}, postprocess_params

    def __call__(self, inputs, **kwargs):
        """Classify one input (a dict, or a plain string) or a list of them; see the class docstring."""
        return super().__call__(inputs, **kwargs)

    # -------------------------------------------------------------------------------------------------- preprocessing

    def preprocess(self, inputs, sampling_rate=None) -> dict:
        """One input -> `{"text", "audio_features", "video_features"}`, raw media turned into features. The processor's
        padding options apply when the batch is built (`_collate`)."""
        example = self._checked_example(inputs)
        audio, video = example.get("audio"), example.get("video")
        if audio is None and example.get("audio_features") is None and _is_clip(video):
            audio = video  # the clip's sound
        if video is not None and not self.processor.extracts_video:
            if not self._warned_video_without_extractor:
                logger.warning(
                    "The checkpoint's processor names no video feature extractor (video_feature_model=None: "
                    "MIntRec2.0's Swin Transformer features cannot be made here), so the video is left out and the "
                    "model reads it as missing. Pass `video_features` to use video."
                )
                self._warned_video_without_extractor = True
            video = None
        audio_features, video_features = example.get("audio_features"), example.get("video_features")
        if audio is not None or video is not None:
            extracted_audio, extracted_video = self.processor.extract_features(
                audio=None if audio is None else [audio], videos=None if video is None else [video],
                sampling_rate=sampling_rate,
            )
            if audio is not None:
                audio_features = extracted_audio[0]
            if video is not None:
                video_features = extracted_video[0]
        return {"text": example["text"], "audio_features": audio_features, "video_features": video_features}

    @staticmethod
    def _checked_example(inputs) -> dict:
        if isinstance(inputs, str):
            return {"text": inputs}
        if not isinstance(inputs, dict):
            raise ValueError(
                f"each input must be a dict with the keys {INPUT_KEYS} ('text' required), or a string; got "
                f"{type(inputs).__name__}"
            )
        unknown = sorted(set(inputs) - set(INPUT_KEYS))
        if unknown:
            raise ValueError(
                f"input keys {unknown} are not understood; expected some of {INPUT_KEYS} (to classify dataset rows, "
                "keep only those columns, e.g. dataset.select_columns(['text', 'audio_features', 'video_features']))"
            )
        if not isinstance(inputs.get("text"), str):
            raise ValueError(f"input['text'] must be the utterance as a string, got {inputs.get('text')!r}")
        for raw, features in [("audio", "audio_features"), ("video", "video_features")]:
            if inputs.get(raw) is not None and inputs.get(features) is not None:
                raise ValueError(f"input has both {raw!r} and {features!r}: give the raw media or the features")
        return inputs

    def _collate(self, examples: list[dict], padding=None, truncation=None, max_length=None):
        """A batch of preprocessed examples, padded by the processor (a row without a modality is masked)."""

        def column(key):
            values = [example[key] for example in examples]
            return None if all(value is None for value in values) else values

        return self.processor(
            text=[example["text"] for example in examples], audio_features=column("audio_features"),
            video_features=column("video_features"), return_tensors="pt", padding=padding, truncation=truncation,
            max_length=max_length,
        )

    def run_single(self, inputs, preprocess_params, forward_params, postprocess_params):
        sampling_rate = preprocess_params.get("sampling_rate")
        options = {name: preprocess_params[name] for name in PROCESSOR_OPTIONS if name in preprocess_params}
        model_inputs = self._collate([self.preprocess(inputs, sampling_rate=sampling_rate)], **options)
        return self.postprocess(self.forward(model_inputs, **forward_params), **postprocess_params)

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        # As Pipeline.get_iterator, with the processor as the collate function: it pads audio and video too, and
        # fills in a modality some examples of the batch lack.
        options = {name: preprocess_params[name] for name in PROCESSOR_OPTIONS if name in preprocess_params}
        extraction_params = {key: value for key, value in preprocess_params.items() if key not in PROCESSOR_OPTIONS}
        if isinstance(inputs, collections.abc.Sized):
            dataset = PipelineDataset(inputs, self.preprocess, extraction_params)
        else:
            num_workers = min(num_workers, 1)  # an iterable is consumed once
            dataset = PipelineIterator(inputs, self.preprocess, extraction_params)
        if "TOKENIZERS_PARALLELISM" not in os.environ:
            os.environ["TOKENIZERS_PARALLELISM"] = "false"  # the DataLoader's workers already run in parallel
        loader = torch.utils.data.DataLoader(
            dataset, num_workers=num_workers, batch_size=batch_size,
            collate_fn=functools.partial(self._collate, **options),
        )
        model_iterator = PipelineIterator(loader, self.forward, forward_params, loader_batch_size=batch_size)
        return PipelineIterator(model_iterator, self.postprocess, postprocess_params)

    # -------------------------------------------------------------------------------------------------------- forward

    def _forward(self, model_inputs) -> dict:
        for key in ("audio_features", "video_features"):  # features are float32; the model may run in half precision
            if key in model_inputs:
                model_inputs[key] = model_inputs[key].to(self.model.dtype)
        return {"logits": self.model(**model_inputs).logits}

    # ------------------------------------------------------------------------------------------------- postprocessing

    def postprocess(self, model_outputs, top_k=1, out_of_scope=True) -> list[dict[str, Any]]:
        logits = model_outputs["logits"].float().cpu().numpy().astype(np.float64).reshape(1, -1)  # (1, K)
        probabilities = softmax(logits)[0]
        ranking = [int(index) for index in np.argsort(-probabilities, kind="stable")]  # ties: lowest id first
        id2label = self.model.config.id2label
        results = [{"label": id2label[index], "score": float(probabilities[index])} for index in ranking]
        if out_of_scope and self.out_of_scope_detector is not None:
            predictions, oos_scores = out_of_scope_decisions(logits, self.out_of_scope_detector)
            prediction = int(predictions[0])
            if prediction == len(probabilities):
                results.insert(0, {"label": self.out_of_scope_detector["label"], "score": float(oos_scores[0])})
            elif prediction != ranking[0]:  # DOC ranks by sigmoid: its pick leads, should the two ever disagree
                results.insert(0, results.pop(ranking.index(prediction)))
        return results if top_k is None else results[:top_k]

    # ------------------------------------------------------------------------------------------------------ saving

    def save_pretrained(self, save_directory, **kwargs):
        """Saves the model, the processor and this pipeline's code, named in `config.custom_pipelines`: then
        `pipeline(model=save_directory, trust_remote_code=True)` rebuilds this pipeline, where this package is not
        installed too."""
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory, **kwargs)


# `Pipeline.save_pretrained` writes the registration into `config.custom_pipelines` (the class as
# "pipeline_dyken.MultimodalIntentRecognitionPipeline", the model class as "AutoModelForSequenceClassification").
if __name__ == "pipeline_dyken":  # the installed package (not a Hub copy): the task is known by name everywhere
    PIPELINE_REGISTRY.register_pipeline(TASK, pipeline_class=MultimodalIntentRecognitionPipeline,
                                        pt_model=AutoModelForSequenceClassification, type="multimodal")
    try:  # so that AutoModel* know "dyken" checkpoints too (in a `try`: a Hub copy never runs this block)
        import modeling_dyken  # noqa: F401
    except ImportError:
        pass
else:  # a checkpoint's copy: saving through it still names it in custom_pipelines, without a global registration
    MultimodalIntentRecognitionPipeline._registered_impl = {
        TASK: {"impl": MultimodalIntentRecognitionPipeline, "pt": (AutoModelForSequenceClassification,),
               "type": "multimodal"}
    }

__all__ = ["MultimodalIntentRecognitionPipeline", "TASK", "out_of_scope_decisions", "read_out_of_scope_detector"]
