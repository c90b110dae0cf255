# Copyright 2025 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""Intent-recognition metrics for MIntRec / MIntRec2.0, computed as the official benchmark code does.

Two ways to use this file, both backed by the same plain functions:

- as an `evaluate` module: `evaluate.load("PATH/TO/intent_metrics")` (closed set) or
  `evaluate.load("PATH/TO/intent_metrics", "open_set")` (open set with an out-of-scope class);
  it loads from the local folder only, so it works with `HF_HUB_OFFLINE=1`;
- as a Python module: `from dyken_hyena.metrics import doc_fit_thresholds, ...`
  for the out-of-scope detectors (DOC, max-softmax) that turn logits into K+1-way predictions.

Every metric is a fraction in [0, 1]; multiply by 100 for the percentages papers print.
"""

import warnings

import datasets
import evaluate
import numpy as np
from scipy.special import expit, softmax
from scipy.stats import norm
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score, roc_curve

_CITATION = """\
@inproceedings{zhang2022mintrec,
  title     = {MIntRec: A New Dataset for Multimodal Intent Recognition},
  author    = {Zhang, Hanlei and Xu, Hua and Wang, Xin and Zhou, Qianrui and Zhao, Shaojie and Teng, Jiayan},
  booktitle = {Proceedings of the 30th ACM International Conference on Multimedia},
  pages     = {1688--1697},
  year      = {2022},
  doi       = {10.1145/3503161.3547906}
}
@inproceedings{zhang2024mintrec2,
  title     = {{MIntRec2.0}: A Large-scale Benchmark Dataset for Multimodal Intent Recognition and Out-of-scope Detection in Conversations},
  author    = {Zhang, Hanlei and Wang, Xin and Xu, Hua and Zhou, Qianrui and Gao, Kai and Su, Jianhua and Zhao, Jinyue and Li, Wenrui and Chen, Yanting},
  booktitle = {The Twelfth International Conference on Learning Representations},
  year      = {2024},
  url       = {https://openreview.net/forum?id=nY9nITZQjc}
}
@inproceedings{shu2017doc,
  title     = {{DOC}: Deep Open Classification of Text Documents},
  author    = {Shu, Lei and Xu, Hu and Liu, Bing},
  booktitle = {Proceedings of the 2017 Conference on Empirical Methods in Natural Language Processing},
  pages     = {2911--2916},
  year      = {2017}
}
"""

_DESCRIPTION = """\
Metrics of the MIntRec (ACM MM 2022) and MIntRec2.0 (ICLR 2024) benchmarks, with the same sklearn
calls as the official code (thuiar/MIntRec utils/metrics.py, thuiar/MIntRec2.0 utils/metrics.py).

Config "default" (closed set): accuracy, f1_macro, precision_macro, recall_macro, f1_weighted,
precision_weighted. The official code calls sklearn without a label list, so a class that appears
in neither the references nor the predictions is left out of the macro average; that is the
default here too. Pass `num_labels=K` (or `labels=[...]`) to score every class, absent ones as 0.

Config "open_set": K known classes plus one out-of-scope (OOS) class. Inputs are K+1-way
predictions, references and an out-of-scope score per example (higher = more likely OOS).
Outputs: f1_is (mean F1 of the known classes), f1_oos (F1 of the OOS class), open_accuracy,
open_f1_macro (mean F1 over the known classes and OOS), auroc and fpr95 (OOS is the positive class).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list[int]`): predicted class ids. Open set: K+1-way, the OOS id included.
    references (`list[int]`): true class ids. Open set: the OOS id marks out-of-scope examples.
    oos_scores (`list[float]`, config "open_set" only): out-of-scope score per example, higher means
        more likely out-of-scope, e.g. `doc_oos_scores(logits)` (1 - top sigmoid score) or
        `max_softmax_oos_scores(logits)` (1 - top softmax probability).
    num_labels (`int`, optional): K, the number of known (in-scope) classes.
        Closed set: score every class 0..K-1, a class absent from references and predictions
        counting as F1 = P = R = 0. Open set: the OOS id is K and all K+1 classes are scored.
    labels (`list[int]`, optional, closed set only): explicit class ids to score (sklearn `labels`).
    oos_label_id (`int`, optional, open set only): the OOS id when `num_labels` is not given. Then the
        known classes scored are those present in references or predictions (the official
        confusion-matrix code) and the OOS class is always scored.

Returns:
    Closed set: accuracy, f1_macro, precision_macro, recall_macro, f1_weighted, precision_weighted.
    Open set: f1_is, f1_oos, open_accuracy, open_f1_macro, auroc, fpr95.
    All are floats in [0, 1]. auroc and fpr95 are NaN (with a warning) when the references hold only
    in-scope or only out-of-scope examples: a ranking metric is undefined with one class.

Examples:
    >>> metric = evaluate.load("metrics/intent_metrics")
    >>> metric.compute(predictions=[0, 0, 1, 1, 2, 2], references=[0, 0, 0, 1, 1, 2])["accuracy"]
    0.6666666666666666
    >>> open_metric = evaluate.load("metrics/intent_metrics", "open_set")
    >>> result = open_metric.compute(
    ...     predictions=[0, 2, 1], references=[0, 2, 2], oos_scores=[0.1, 0.9, 0.4], num_labels=2
    ... )
    >>> result["f1_oos"]
    0.6666666666666666
"""

CLOSED_SET_METRICS = (
    "accuracy",
    "f1_macro",
    "precision_macro",
    "recall_macro",
    "f1_weighted",
    "precision_weighted",
)
OPEN_SET_METRICS = ("f1_is", "f1_oos", "open_accuracy", "open_f1_macro", "auroc", "fpr95")

# The TPR at which FPR@95TPR is read (fraction of out-of-scope examples that must be detected).
FPR_AT_TPR_LEVEL = 0.95
# DOC never accepts a class with a top sigmoid score at or below this floor (official constant).
DOC_MIN_THRESHOLD = 0.5


def _as_class_ids(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be a 1-D sequence of class ids, got shape {array.shape}.")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.all(np.equal(np.mod(array, 1), 0)):
            raise ValueError(f"`{name}` must hold integer class ids, got values such as {array[:3].tolist()}.")
        array = array.astype(np.int64)
    return array


def _check_id_range(array: np.ndarray, name: str, num_classes: int) -> None:
    bad = array[(array < 0) | (array >= num_classes)]
    if bad.size:
        raise ValueError(f"`{name}` holds id {int(bad[0])}, outside the expected range 0..{num_classes - 1}.")


def _as_logits(logits, name: str) -> np.ndarray:
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] < 1:
        raise ValueError(f"`{name}` must have shape (num_examples, num_labels), got {array.shape}.")
    return array


# ----------------------------------------------------------------------------------------------
# Closed set
# ----------------------------------------------------------------------------------------------


def closed_set_metrics(predictions, references, num_labels=None, labels=None) -> dict:
    """Accuracy and macro/weighted F1, precision, recall, with sklearn as the official code calls it.

    `labels=None` and `num_labels=None` (default) reproduce `f1_score(y_true, y_pred, average="macro")`
    without a label list: only classes present in references or predictions enter the macro mean.
    `num_labels=K` scores classes 0..K-1 (absent ones count as 0); `labels` gives the list explicitly.
    `zero_division=0` gives the value sklearn's default ("warn") also returns, without the warning.
    """
    predictions = _as_class_ids(predictions, "predictions")
    references = _as_class_ids(references, "references")
    if predictions.shape != references.shape:
        raise ValueError(f"Got {predictions.size} predictions for {references.size} references.")
    if predictions.size == 0:
        raise ValueError("Cannot compute metrics on zero examples.")
    if num_labels is not None and labels is not None:
        raise ValueError("Pass either `num_labels` or `labels`, not both.")
    if num_labels is not None:
        _check_id_range(references, "references", num_labels)
        _check_id_range(predictions, "predictions", num_labels)
        labels = list(range(num_labels))

    def score(metric_fn, average):
        return float(metric_fn(references, predictions, labels=labels, average=average, zero_division=0))

    return {
        "accuracy": float(accuracy_score(references, predictions)),
        "f1_macro": score(f1_score, "macro"),
        "precision_macro": score(precision_score, "macro"),
        "recall_macro": score(recall_score, "macro"),
        "f1_weighted": score(f1_score, "weighted"),
        "precision_weighted": score(precision_score, "weighted"),
    }


# ----------------------------------------------------------------------------------------------
# Open set
# ----------------------------------------------------------------------------------------------


def _undefined_for_one_class(metric_name: str, is_oos: np.ndarray) -> bool:
    if is_oos.all() or not is_oos.any():
        only = "out-of-scope" if is_oos.all() else "in-scope"
        warnings.warn(
            f"{metric_name} is undefined when the references hold only {only} examples; returning NaN.",
            UserWarning,
            stacklevel=3,
        )
        return True
    return False


def out_of_scope_auroc(is_oos, oos_scores) -> float:
    """Area under the ROC curve of `oos_scores` with out-of-scope as the positive class.

    Equals the official AUROC (in-scope positive, confidence as score) when oos_score = 1 - confidence.
    Returns NaN (with a warning) when `is_oos` holds a single class.
    """
    is_oos = np.asarray(is_oos, dtype=bool)
    if _undefined_for_one_class("AUROC", is_oos):
        return float("nan")
    return float(roc_auc_score(is_oos, np.asarray(oos_scores, dtype=np.float64)))


def fpr_at_95_tpr(is_oos, oos_scores) -> float:
    """False-positive rate of in-scope examples at the threshold where 95% of out-of-scope ones are caught.

    Convention: an example is flagged out-of-scope when its score is >= t; t is the largest threshold
    whose true-positive rate (share of out-of-scope examples flagged) is >= 0.95, read from
    `sklearn.metrics.roc_curve`; the result is the share of in-scope examples with score >= t.
    Without ties this equals the official loop (walk the examples by decreasing score until 95% of
    positives are seen, count the negatives passed); with ties, tied examples are flagged together.
    Returns NaN (with a warning) when `is_oos` holds a single class.
    """
    is_oos = np.asarray(is_oos, dtype=bool)
    if _undefined_for_one_class("FPR@95TPR", is_oos):
        return float("nan")
    fpr, tpr, _ = roc_curve(is_oos, np.asarray(oos_scores, dtype=np.float64), drop_intermediate=False)
    # tpr is non-decreasing: the first point reaching the level is the largest qualifying threshold.
    first_reaching = int(np.searchsorted(tpr, FPR_AT_TPR_LEVEL, side="left"))
    return float(fpr[first_reaching])


def open_set_metrics(predictions, references, oos_scores, num_labels=None, oos_label_id=None) -> dict:
    """Open-set metrics over K known classes plus one out-of-scope class.

    Args:
        predictions, references: K+1-way class ids (numpy arrays or lists).
        oos_scores: per-example out-of-scope score, higher = more likely out-of-scope.
        num_labels: K. The OOS id is K and every class 0..K is scored (absent ones count as F1 = 0).
        oos_label_id: the OOS id, when `num_labels` is not given. Then, like the official
            `OID_Metrics` (per-class F1 from `confusion_matrix(y_true, y_pred)`), the known classes scored
            are those present in references or predictions; the OOS class is always scored.

    Returns f1_is (mean F1 of the known classes), f1_oos, open_accuracy, open_f1_macro (mean over
    the scored known classes and OOS), auroc and fpr95 (see `out_of_scope_auroc`, `fpr_at_95_tpr`).
    The official code rounds F1 values to 4 decimals; these are not rounded.
    """
    predictions = _as_class_ids(predictions, "predictions")
    references = _as_class_ids(references, "references")
    oos_scores = np.asarray(oos_scores, dtype=np.float64)
    if not predictions.shape == references.shape == oos_scores.shape:
        raise ValueError(
            f"predictions, references and oos_scores must have the same length, got {predictions.size}, "
            f"{references.size} and {oos_scores.size}."
        )
    if predictions.size == 0:
        raise ValueError("Cannot compute metrics on zero examples.")
    if num_labels is None and oos_label_id is None:
        raise ValueError(
            "The open-set metrics need to know the out-of-scope id: pass `num_labels=K` (OOS id K, all "
            "K+1 classes scored) or `oos_label_id=...` (official: only classes that occur are scored)."
        )
    if num_labels is not None:
        if oos_label_id is not None and oos_label_id != num_labels:
            raise ValueError(
                f"With num_labels={num_labels} the OOS id is {num_labels}, got oos_label_id={oos_label_id}."
            )
        oos_label_id = num_labels
        known_labels = list(range(num_labels))
    else:
        known_labels = sorted((set(references.tolist()) | set(predictions.tolist())) - {oos_label_id})
    _check_id_range(references, "references", oos_label_id + 1)
    _check_id_range(predictions, "predictions", oos_label_id + 1)

    # (num_known + 1,) per-class F1, the OOS class last, as in the official confusion-matrix code.
    per_class_f1 = f1_score(
        references, predictions, labels=known_labels + [oos_label_id], average=None, zero_division=0
    )
    is_oos = references == oos_label_id
    return {
        "f1_is": float(np.mean(per_class_f1[:-1])) if known_labels else float("nan"),
        "f1_oos": float(per_class_f1[-1]),
        "open_accuracy": float(accuracy_score(references, predictions)),
        "open_f1_macro": float(np.mean(per_class_f1)),
        "auroc": out_of_scope_auroc(is_oos, oos_scores),
        "fpr95": fpr_at_95_tpr(is_oos, oos_scores),
    }


# ----------------------------------------------------------------------------------------------
# Out-of-scope detection: DOC (official MIntRec2.0 method) and max-softmax
# ----------------------------------------------------------------------------------------------


def doc_fit_thresholds(train_logits, train_labels, scale: float = 1.0) -> np.ndarray:
    """Per-class DOC thresholds fitted on the TRAINING set, exactly as the MIntRec2.0 code (`cal_mu_std`).

    For each class i: take the sigmoid score of column i for the training examples whose true label is
    i, mirror the set around 1 ({p} and {2 - p}), fit a Gaussian with `scipy.stats.norm.fit` (maximum
    likelihood: mean 1 by symmetry, std = sqrt(mean((p - 1)^2)), i.e. ddof=0), and set
    threshold_i = max(0.5, 1 - scale * std_i).

    A class without training examples gets 0.5, which is what the official code ends up with
    (`norm.fit([])` gives NaN and `max(0.5, nan)` is 0.5); a warning names those classes.

    Args:
        train_logits: (num_train, K) logits of the in-scope training examples.
        train_labels: (num_train,) their class ids in 0..K-1.
        scale: the official `args.scale`, 1 in the MIntRec2.0 configs.

    Returns:
        (K,) float64 thresholds on the sigmoid scale.
    """
    logits = _as_logits(train_logits, "train_logits")
    labels = _as_class_ids(train_labels, "train_labels")
    if labels.shape[0] != logits.shape[0]:
        raise ValueError(f"Got {logits.shape[0]} rows of train_logits for {labels.shape[0]} train_labels.")
    num_labels = logits.shape[1]
    _check_id_range(labels, "train_labels", num_labels)

    probs = expit(logits)  # (num_train, K) independent sigmoid scores, not a softmax
    thresholds = np.full(num_labels, DOC_MIN_THRESHOLD, dtype=np.float64)
    classes_without_examples = []
    for class_id in range(num_labels):
        class_probs = probs[labels == class_id, class_id]
        if class_probs.size == 0:
            classes_without_examples.append(class_id)
            continue
        mirrored = np.concatenate([class_probs, 2.0 - class_probs])
        _, std = norm.fit(mirrored)
        thresholds[class_id] = max(DOC_MIN_THRESHOLD, 1.0 - scale * std)
    if classes_without_examples:
        warnings.warn(
            f"DOC: classes {classes_without_examples} have no training examples; their threshold is "
            f"{DOC_MIN_THRESHOLD} (what the official code ends up with).",
            UserWarning,
            stacklevel=2,
        )
    return thresholds


def doc_predict(logits, thresholds, oos_label_id=None) -> np.ndarray:
    """K+1-way DOC predictions: the top sigmoid class, or out-of-scope when its score is at or below
    that class's threshold (official `classify_doc`: accept only when `max_value > threshold`).

    Args:
        logits: (N, K) logits.
        thresholds: (K,) from `doc_fit_thresholds`.
        oos_label_id: id given to rejected examples; defaults to K.

    Returns:
        (N,) int64 class ids in 0..K.
    """
    logits = _as_logits(logits, "logits")
    thresholds = np.asarray(thresholds, dtype=np.float64)
    num_labels = logits.shape[1]
    if thresholds.shape != (num_labels,):
        raise ValueError(f"Expected {num_labels} thresholds (one per class), got shape {thresholds.shape}.")
    oos_label_id = num_labels if oos_label_id is None else oos_label_id
    probs = expit(logits)
    top_class = probs.argmax(axis=1)  # (N,) ties go to the lowest id, as np.argmax in the official code
    top_prob = probs[np.arange(len(probs)), top_class]
    return np.where(top_prob > thresholds[top_class], top_class, oos_label_id).astype(np.int64)


def doc_oos_scores(logits) -> np.ndarray:
    """(N,) out-of-scope score for AUROC / FPR@95 with DOC: 1 - top sigmoid score."""
    return 1.0 - expit(_as_logits(logits, "logits")).max(axis=1)


def max_softmax_oos_scores(logits) -> np.ndarray:
    """(N,) out-of-scope score of the max-softmax baseline: 1 - top softmax probability."""
    return 1.0 - softmax(_as_logits(logits, "logits"), axis=1).max(axis=1)


def max_softmax_predict(logits, threshold: float, oos_label_id=None) -> np.ndarray:
    """K+1-way predictions: the argmax class, or out-of-scope when the top softmax probability is
    strictly below `threshold` (so `threshold=0` never rejects). `oos_label_id` defaults to K."""
    logits = _as_logits(logits, "logits")
    oos_label_id = logits.shape[1] if oos_label_id is None else oos_label_id
    probs = softmax(logits, axis=1)
    top_class = probs.argmax(axis=1)
    return np.where(probs.max(axis=1) < threshold, oos_label_id, top_class).astype(np.int64)


def max_softmax_fit_threshold(logits, labels, oos_label_id=None, num_candidates: int = 201) -> float:
    """Choose the max-softmax threshold on a VALIDATION set that holds out-of-scope examples.

    Tries thresholds at `num_candidates` quantiles of the validation top-softmax probabilities (plus 0,
    "reject nothing") and keeps the one with the best open-set macro F1 over all K+1 classes (the score
    the official MIntRec2.0 code early-stops on); ties keep the lowest threshold.

    Args:
        logits: (N, K) validation logits, in-scope and out-of-scope examples together.
        labels: (N,) ids in 0..K, the out-of-scope id marking out-of-scope examples.
        oos_label_id: defaults to K.
    """
    logits = _as_logits(logits, "logits")
    labels = _as_class_ids(labels, "labels")
    num_labels = logits.shape[1]
    oos_label_id = num_labels if oos_label_id is None else oos_label_id
    if not np.any(labels == oos_label_id):
        raise ValueError(
            f"The validation labels hold no out-of-scope example (id {oos_label_id}); a rejection threshold "
            "cannot be chosen on them. Pass a threshold to `max_softmax_predict` yourself."
        )
    top_prob = softmax(logits, axis=1).max(axis=1)
    candidates = np.unique(
        np.concatenate([[0.0], np.quantile(top_prob, np.linspace(0, 1, num_candidates), method="inverted_cdf")])
    )
    all_labels = sorted(set(range(num_labels)) | {oos_label_id})
    best_threshold, best_f1 = 0.0, -1.0
    for threshold in candidates:  # ascending, so ">" keeps the lowest of tied thresholds
        predictions = max_softmax_predict(logits, threshold, oos_label_id)
        score = f1_score(labels, predictions, labels=all_labels, average="macro", zero_division=0)
        if score > best_f1:
            best_threshold, best_f1 = float(threshold), score
    return best_threshold


# ----------------------------------------------------------------------------------------------
# The `evaluate` module
# ----------------------------------------------------------------------------------------------


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class IntentMetrics(evaluate.Metric):
    """`evaluate` wrapper around `closed_set_metrics` (config "default") and `open_set_metrics` ("open_set")."""

    def _info(self):
        if self.config_name not in ("default", "open_set"):
            raise KeyError(f'Unknown config "{self.config_name}" for intent_metrics: use "default" or "open_set".')
        features = {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
        if self.config_name == "open_set":
            features["oos_scores"] = datasets.Value("float64")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(features),
            format="numpy",
            reference_urls=[
                "https://github.com/thuiar/MIntRec/blob/main/utils/metrics.py",
                "https://github.com/thuiar/MIntRec2.0/blob/main/utils/metrics.py",
            ],
        )

    def _compute(self, predictions, references, oos_scores=None, num_labels=None, labels=None, oos_label_id=None):
        if self.config_name == "open_set":
            if labels is not None:
                raise ValueError(
                    '`labels` is a closed-set option; use `num_labels` or `oos_label_id` with "open_set".'
                )
            return open_set_metrics(
                predictions, references, oos_scores, num_labels=num_labels, oos_label_id=oos_label_id
            )
        if oos_label_id is not None or oos_scores is not None:
            raise ValueError(
                '`oos_label_id` and `oos_scores` need the "open_set" config: evaluate.load(path, "open_set").'
            )
        return closed_set_metrics(predictions, references, num_labels=num_labels, labels=labels)
