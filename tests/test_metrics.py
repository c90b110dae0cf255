"""Tests of metrics/intent_metrics: the local `evaluate` module and the DOC / max-softmax helpers.

Expected values are worked out by hand in the comments; random-data tests compare with direct sklearn
calls and with loop re-implementations of the official MIntRec / MIntRec2.0 code.
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import evaluate
import numpy as np
import pytest
from scipy.special import expit, logit, softmax
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)

from dyken_hyena.metrics.intent_metrics.intent_metrics import (
    closed_set_metrics,
    doc_fit_thresholds,
    doc_oos_scores,
    doc_predict,
    fpr_at_95_tpr,
    max_softmax_fit_threshold,
    max_softmax_oos_scores,
    max_softmax_predict,
    open_set_metrics,
    out_of_scope_auroc,
)

METRIC_DIR = Path(__file__).resolve().parents[1] / "dyken_hyena" / "metrics" / "intent_metrics"

# 3-class toy used by several tests.
# references  0 0 0 1 1 2
# predictions 0 0 1 1 2 2
# class 0: TP 2, FP 0, FN 1 -> P 1,   R 2/3, F1 0.8       (support 3)
# class 1: TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F1 0.5       (support 2)
# class 2: TP 1, FP 1, FN 0 -> P 1/2, R 1,   F1 2/3       (support 1)
TOY_REFERENCES = [0, 0, 0, 1, 1, 2]
TOY_PREDICTIONS = [0, 0, 1, 1, 2, 2]
TOY_EXPECTED = {
    "accuracy": 4 / 6,
    "f1_macro": (0.8 + 0.5 + 2 / 3) / 3,  # 0.6556
    "precision_macro": (1 + 0.5 + 0.5) / 3,  # 0.6667
    "recall_macro": (2 / 3 + 0.5 + 1) / 3,  # 0.7222
    "f1_weighted": (3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6,  # 0.6778
    "precision_weighted": (3 * 1 + 2 * 0.5 + 1 * 0.5) / 6,  # 0.75
}


@pytest.fixture(scope="module")
def closed_metric():
    return evaluate.load(str(METRIC_DIR), keep_in_memory=True)


@pytest.fixture(scope="module")
def open_metric():
    return evaluate.load(str(METRIC_DIR), "open_set", keep_in_memory=True)


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------


def test_loads_offline_in_a_fresh_process(tmp_path):
    # Offline flags are read when evaluate/datasets/huggingface_hub are imported: a fresh process.
    # HF_ENDPOINT points at a closed local port, so any attempted Hub call would fail loudly.
    script = (
        "import json, sys, evaluate\n"
        f"closed = evaluate.load({str(METRIC_DIR)!r}, keep_in_memory=True)\n"
        f"open_set = evaluate.load({str(METRIC_DIR)!r}, 'open_set', keep_in_memory=True)\n"
        f"out = {{'closed': closed.compute(predictions={TOY_PREDICTIONS}, references={TOY_REFERENCES}),\n"
        "       'open': open_set.compute(predictions=[0, 2, 1], references=[0, 2, 2],\n"
        "                                oos_scores=[0.1, 0.9, 0.4], num_labels=2)}\n"
        "print(json.dumps(out))\n"
    )
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_ENDPOINT": "http://127.0.0.1:9",
        "HF_MODULES_CACHE": str(tmp_path / "modules"),
        "HF_HOME": str(tmp_path / "hf_home"),
    }
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    out = json.loads(completed.stdout.strip().splitlines()[-1])
    assert out["closed"] == pytest.approx(TOY_EXPECTED)
    # OOS class (id 2): TP 1, FP 0, FN 1 -> F1 2/3.
    assert out["open"]["f1_oos"] == pytest.approx(2 / 3)
    # The module was copied into the modules cache we chose, not somewhere on the Hub.
    assert list((tmp_path / "modules").rglob("intent_metrics.py"))


def test_unknown_config_is_rejected():
    with pytest.raises(KeyError, match="open_set"):
        evaluate.load(str(METRIC_DIR), "openset")


# ------------------------------------------------------------------------------------------------
# Closed set
# ------------------------------------------------------------------------------------------------


def test_closed_set_hand_computed(closed_metric):
    result = closed_metric.compute(predictions=TOY_PREDICTIONS, references=TOY_REFERENCES)
    assert set(result) == set(TOY_EXPECTED)
    assert result == pytest.approx(TOY_EXPECTED)


def test_closed_set_streaming_batches_equal_one_call(closed_metric):
    for start in range(0, 6, 2):
        closed_metric.add_batch(
            predictions=TOY_PREDICTIONS[start : start + 2], references=TOY_REFERENCES[start : start + 2]
        )
    assert closed_metric.compute() == pytest.approx(TOY_EXPECTED)


def test_absent_class_official_default_versus_num_labels(closed_metric):
    # Class 3 occurs in neither references nor predictions.
    # Official default (sklearn without a label list): averaged over classes 0..2 -> as TOY_EXPECTED.
    default = closed_metric.compute(predictions=TOY_PREDICTIONS, references=TOY_REFERENCES)
    assert default["f1_macro"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    # num_labels=4: class 3 counts as F1 = P = R = 0 -> sums divided by 4; weighted metrics unchanged
    # (support 0), accuracy unchanged.
    all_classes = closed_metric.compute(predictions=TOY_PREDICTIONS, references=TOY_REFERENCES, num_labels=4)
    assert all_classes["f1_macro"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 4)  # 0.4917
    assert all_classes["precision_macro"] == pytest.approx(2 / 4)
    assert all_classes["recall_macro"] == pytest.approx((2 / 3 + 0.5 + 1) / 4)
    assert all_classes["f1_weighted"] == pytest.approx(TOY_EXPECTED["f1_weighted"])
    assert all_classes["accuracy"] == pytest.approx(4 / 6)
    # The same through an explicit label list.
    explicit = closed_metric.compute(predictions=TOY_PREDICTIONS, references=TOY_REFERENCES, labels=[0, 1, 2, 3])
    assert explicit == pytest.approx(all_classes)


def test_class_never_predicted_counts_as_zero_in_both_modes():
    # references 0 1 2, predictions 0 1 1: class 2 is in the references but never predicted ->
    # P = R = F1 = 0 for class 2 (zero_division=0); class 1: TP 1, FP 1 -> P 1/2, R 1, F1 2/3.
    for kwargs in ({}, {"num_labels": 3}):
        result = closed_set_metrics([0, 1, 1], [0, 1, 2], **kwargs)
        assert result["f1_macro"] == pytest.approx((1 + 2 / 3 + 0) / 3)
        assert result["precision_macro"] == pytest.approx((1 + 0.5 + 0) / 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_set_matches_direct_sklearn_calls(closed_metric, seed):
    # The official calls: sklearn with average=macro/weighted and no label list.
    rng = np.random.default_rng(seed)
    references = rng.integers(0, 20, size=400)
    # Correct 60% of the time; classes 18 and 19 never predicted, so zero divisions happen.
    predictions = np.where(rng.random(400) < 0.6, references, rng.integers(0, 18, size=400))
    result = closed_metric.compute(predictions=predictions, references=references)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's zero-division warning
        expected = {
            "accuracy": accuracy_score(references, predictions),
            "f1_macro": f1_score(references, predictions, average="macro"),
            "precision_macro": precision_score(references, predictions, average="macro"),
            "recall_macro": recall_score(references, predictions, average="macro"),
            "f1_weighted": f1_score(references, predictions, average="weighted"),
            "precision_weighted": precision_score(references, predictions, average="weighted"),
        }
    assert result == pytest.approx(expected, abs=1e-12)


def test_closed_set_input_errors(closed_metric):
    with pytest.raises(ValueError, match="outside the expected range 0..2"):
        closed_metric.compute(predictions=[0, 3], references=[0, 1], num_labels=3)
    with pytest.raises(ValueError, match="either `num_labels` or `labels`"):
        closed_set_metrics([0], [0], num_labels=2, labels=[0, 1])
    with pytest.raises(ValueError, match="2 predictions for 3 references"):
        closed_set_metrics([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="open_set"):
        closed_metric.compute(predictions=[0], references=[0], oos_label_id=1)
    with pytest.raises(ValueError, match="open_set"):
        closed_metric.compute(predictions=[0], references=[0], oos_scores=[0.3])


# ------------------------------------------------------------------------------------------------
# Open set
# ------------------------------------------------------------------------------------------------

# K = 2 known classes, OOS id 2.
# references  0 0 1 1 2 2 2
# predictions 0 2 1 0 2 2 1
# class 0: TP 1 (#0), FP 1 (#3), FN 1 (#1) -> F1 1/2
# class 1: TP 1 (#2), FP 1 (#6), FN 1 (#3) -> F1 1/2
# OOS:     TP 2 (#4, #5), FP 1 (#1), FN 1 (#6) -> P 2/3, R 2/3, F1 2/3
# accuracy 4/7; open macro F1 (1/2 + 1/2 + 2/3) / 3 = 5/9.
# oos_scores: in-scope (#0-#3) 0.1 0.7 0.2 0.4; OOS (#4-#6) 0.9 0.8 0.3.
# AUROC = share of (OOS, in-scope) pairs ranked right: 0.9 and 0.8 beat all 4, 0.3 beats 0.1 and 0.2
#   -> (4 + 4 + 2) / 12 = 5/6.
# FPR@95: 95% of 3 OOS needs all 3 -> threshold 0.3 -> in-scope with score >= 0.3: 0.7, 0.4 -> 2/4.
OPEN_REFERENCES = [0, 0, 1, 1, 2, 2, 2]
OPEN_PREDICTIONS = [0, 2, 1, 0, 2, 2, 1]
OPEN_SCORES = [0.1, 0.7, 0.2, 0.4, 0.9, 0.8, 0.3]
OPEN_EXPECTED = {
    "f1_is": 0.5,
    "f1_oos": 2 / 3,
    "open_accuracy": 4 / 7,
    "open_f1_macro": 5 / 9,
    "auroc": 5 / 6,
    "fpr95": 0.5,
}


def test_open_set_hand_computed(open_metric):
    result = open_metric.compute(
        predictions=OPEN_PREDICTIONS, references=OPEN_REFERENCES, oos_scores=OPEN_SCORES, num_labels=2
    )
    assert set(result) == set(OPEN_EXPECTED)
    assert result == pytest.approx(OPEN_EXPECTED)
    # All classes occur, so the official "present classes" mode gives the same numbers.
    official = open_metric.compute(
        predictions=OPEN_PREDICTIONS, references=OPEN_REFERENCES, oos_scores=OPEN_SCORES, oos_label_id=2
    )
    assert official == pytest.approx(OPEN_EXPECTED)


def test_open_set_absent_known_class():
    # Same data, but K = 3 (OOS id 3): remap OOS 2 -> 3, so known class 2 never occurs.
    references = [3 if label == 2 else label for label in OPEN_REFERENCES]
    predictions = [3 if label == 2 else label for label in OPEN_PREDICTIONS]
    all_classes = open_set_metrics(predictions, references, OPEN_SCORES, num_labels=3)
    # num_labels: class 2 counts as F1 0 -> f1_is (1/2 + 1/2 + 0) / 3, open macro (1 + 2/3) / 4.
    assert all_classes["f1_is"] == pytest.approx(1 / 3)
    assert all_classes["open_f1_macro"] == pytest.approx((1 + 2 / 3) / 4)
    # official (oos_label_id): class 2 left out -> identical to the K = 2 case.
    official = open_set_metrics(predictions, references, OPEN_SCORES, oos_label_id=3)
    assert official == pytest.approx(OPEN_EXPECTED)


def _official_open_set_f1(references, predictions):
    """The official OID_Metrics._F_measure, re-written: per-class F1 from confusion_matrix(y_true,
    y_pred) (rows = truth, columns = prediction, classes present in either), last class = open."""
    matrix = confusion_matrix(references, predictions)
    f1s = []
    for index in range(matrix.shape[0]):
        true_positives = matrix[index, index]
        recall = true_positives / matrix[index].sum() if matrix[index].sum() else 0
        precision = true_positives / matrix[:, index].sum() if matrix[:, index].sum() else 0
        f1s.append(2 * recall * precision / (recall + precision) if recall + precision else 0)
    return {"f1_is": np.mean(f1s[:-1]), "f1_oos": f1s[-1], "open_f1_macro": np.mean(f1s)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_open_set_matches_official_confusion_matrix_code(seed):
    rng = np.random.default_rng(seed)
    num_known = 30  # MIntRec2.0
    references = np.where(rng.random(600) < 0.4, num_known, rng.integers(0, num_known, size=600))
    predictions = np.where(rng.random(600) < 0.5, references, rng.integers(0, num_known + 1, size=600))
    predictions[predictions == 7] = 8  # class 7 never predicted
    references[references == 11] = 12  # class 11 never a reference, but may be predicted
    scores = rng.random(600)
    official = _official_open_set_f1(references, predictions)
    result = open_set_metrics(predictions, references, scores, oos_label_id=num_known)
    for key, value in official.items():
        assert result[key] == pytest.approx(value, abs=1e-12), key
    assert result["open_accuracy"] == pytest.approx(accuracy_score(references, predictions))


def _official_fpr_at_recall(scores, is_positive, level=0.95):
    """The official OOD_Metrics._fpr_recall loop, re-written: walk by decreasing score until the
    share of positives seen reaches `level`; FPR = negatives passed / all negatives."""
    order = np.argsort(scores)[::-1]
    sorted_positive = np.asarray(is_positive)[order]
    num_positive = sorted_positive.sum()
    false_positives = true_positives = 0
    for positive in sorted_positive:
        if positive:
            true_positives += 1
        else:
            false_positives += 1
        if true_positives / num_positive >= level:
            break
    return false_positives / (len(sorted_positive) - num_positive)


def test_auroc_and_fpr95_hand_computed():
    # OOS scores 0.9 0.8 0.7 0.4, in-scope 0.85 0.6 0.5 0.3 0.1.
    # FPR@95: 95% of 4 OOS needs 4 -> threshold 0.4 -> in-scope >= 0.4: 0.85 0.6 0.5 -> 3/5.
    # AUROC: 0.9 beats 5, 0.8 beats 4, 0.7 beats 4, 0.4 beats 2 -> 15/20.
    scores = [0.9, 0.8, 0.7, 0.4, 0.85, 0.6, 0.5, 0.3, 0.1]
    is_oos = [True] * 4 + [False] * 5
    assert fpr_at_95_tpr(is_oos, scores) == pytest.approx(3 / 5)
    assert out_of_scope_auroc(is_oos, scores) == pytest.approx(15 / 20)
    # Ties: an in-scope example tied with the last OOS one needed (0.3 -> 0.4) is flagged with it:
    # in-scope >= 0.4 becomes 0.85 0.6 0.5 0.4 -> 4/5.
    tied = [0.9, 0.8, 0.7, 0.4, 0.85, 0.6, 0.5, 0.4, 0.1]
    assert fpr_at_95_tpr(is_oos, tied) == pytest.approx(4 / 5)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fpr95_and_auroc_agree_with_official_code(seed):
    rng = np.random.default_rng(seed)
    is_oos = rng.random(500) < 0.35
    scores = rng.normal(size=500) + 1.2 * is_oos  # continuous: no ties
    assert fpr_at_95_tpr(is_oos, scores) == pytest.approx(_official_fpr_at_recall(scores, is_oos))
    # The official AUROC takes in-scope as positive and a confidence score: same area with conf = -score.
    from sklearn.metrics import roc_auc_score

    assert out_of_scope_auroc(is_oos, scores) == pytest.approx(roc_auc_score(~is_oos, -scores))


def test_all_in_scope_references_give_nan_auroc_with_warning(open_metric):
    with pytest.warns(UserWarning, match="only in-scope"):
        result = open_metric.compute(
            predictions=[0, 1, 2], references=[0, 1, 1], oos_scores=[0.2, 0.3, 0.9], num_labels=2
        )
    assert np.isnan(result["auroc"]) and np.isnan(result["fpr95"])
    # The other keys are still defined: OOS predicted once, never true -> F1_OOS 0.
    assert result["f1_oos"] == 0.0
    assert result["open_accuracy"] == pytest.approx(2 / 3)


def test_open_set_input_errors(open_metric):
    with pytest.raises(ValueError, match="out-of-scope id"):
        open_metric.compute(predictions=[0], references=[0], oos_scores=[0.5])
    with pytest.raises(ValueError, match="outside the expected range 0..2"):
        open_metric.compute(predictions=[3], references=[0], oos_scores=[0.5], num_labels=2)
    with pytest.raises(ValueError, match="OOS id is 2"):
        open_set_metrics([0], [0], [0.5], num_labels=2, oos_label_id=5)
    with pytest.raises(ValueError, match="missing"):
        open_metric.compute(predictions=[0], references=[0], num_labels=2)  # no oos_scores


# ------------------------------------------------------------------------------------------------
# DOC
# ------------------------------------------------------------------------------------------------


def _training_logits():
    """3 classes; the sigmoid scores in each example's own column are chosen, the others are -4."""
    own_probs = {0: [0.9, 0.7], 1: [0.2], 2: [0.95, 0.95, 0.99, 0.91]}
    logits, labels = [], []
    for class_id, probs in own_probs.items():
        for prob in probs:
            row = np.full(3, -4.0)
            row[class_id] = logit(prob)
            logits.append(row)
            labels.append(class_id)
    return np.array(logits), np.array(labels)


def test_doc_thresholds_hand_computed():
    logits, labels = _training_logits()
    # class 0: {0.9, 0.7} mirrored -> {0.9, 0.7, 1.1, 1.3}; mean 1; squared deviations
    #   0.01 0.09 0.01 0.09 -> variance 0.05 (MLE, divide by 4) -> std 0.223607 -> 1 - std = 0.776393.
    # class 1: {0.2, 1.8}; std 0.8 -> 1 - 0.8 = 0.2 < 0.5 -> the 0.5 floor.
    # class 2: deviations 0.05 0.05 0.01 0.09 (twice each) -> variance (0.0025*2 + 0.0001 + 0.0081) / 4
    #   = 0.0033 -> std 0.057446 -> 0.942554.
    expected = [1 - np.sqrt(0.05), 0.5, 1 - np.sqrt(0.0033)]
    assert doc_fit_thresholds(logits, labels) == pytest.approx(expected, abs=1e-9)
    assert doc_fit_thresholds(logits, labels)[0] == pytest.approx(0.776393, abs=1e-6)
    # scale 2 (official args.scale): class 0 -> 1 - 2 * 0.223607 = 0.552786; class 2 -> 0.885109.
    assert doc_fit_thresholds(logits, labels, scale=2.0) == pytest.approx(
        [1 - 2 * np.sqrt(0.05), 0.5, 1 - 2 * np.sqrt(0.0033)], abs=1e-9
    )


def test_doc_uses_true_labels_not_argmax():
    # A class-0 training example whose class-1 score is higher still counts for class 0 (official
    # code: y_prob[trues == i, i]). Class 0 own scores {0.6, 0.8} -> variance (0.16 + 0.04) / 2 = 0.1
    # -> std 0.316228 -> threshold 0.683772.
    logits = logit(np.array([[0.6, 0.99], [0.8, 0.1], [0.1, 0.9]]))
    thresholds = doc_fit_thresholds(logits, [0, 0, 1])
    assert thresholds[0] == pytest.approx(1 - np.sqrt(0.1), abs=1e-9)
    assert thresholds[1] == pytest.approx(0.9, abs=1e-9)  # {0.9, 1.1}: std 0.1


def test_doc_class_without_training_examples_gets_floor():
    logits = logit(np.array([[0.9, 0.1, 0.1], [0.8, 0.1, 0.1]]))
    with pytest.warns(UserWarning, match=r"classes \[1, 2\] have no training examples"):
        thresholds = doc_fit_thresholds(logits, [0, 0])
    assert thresholds[1:] == pytest.approx([0.5, 0.5])


def test_doc_predict_hand_computed_and_boundary():
    thresholds = np.array([1 - np.sqrt(0.05), 0.5, 1 - np.sqrt(0.0033)])  # 0.776, 0.5, 0.943
    exact = expit(1.3)  # a score that equals its threshold bit for bit
    rows = {
        # (top class, its sigmoid score) -> expected id (3 = out-of-scope)
        "class 0 at 0.80 > 0.776 -> 0": ([logit(0.80), -4, -4], 0),
        "class 0 at 0.75 <= 0.776 -> OOS": ([logit(0.75), -4, -4], 3),
        "class 1 at exactly 0.5 = threshold -> OOS": ([-4, 0.0, -4], 3),
        "class 1 at 0.6 -> 1": ([-4, logit(0.6), -4], 1),
        "class 2 at 0.95 > 0.943 -> 2": ([-4, -4, logit(0.95)], 2),
        "all scores low -> OOS": ([-3, -2.5, -5], 3),
    }
    logits = np.array([row for row, _ in rows.values()])
    expected = [label for _, label in rows.values()]
    assert doc_predict(logits, thresholds).tolist() == expected
    # "At or below": a score equal to a fitted-looking threshold is rejected; a hair above is not.
    assert doc_predict([[1.3, -4, -4]], [exact, 0.5, 0.5]).tolist() == [3]
    assert doc_predict([[1.3 + 1e-9, -4, -4]], [exact, 0.5, 0.5]).tolist() == [0]
    # A custom OOS id (e.g. the dataset's "UNK" id).
    assert doc_predict([[-3, -3, -3]], thresholds, oos_label_id=30).tolist() == [30]


def _official_classify_doc(sigmoid_scores, thresholds, oos_label_id):
    """The official classify_doc loop, re-written."""
    predictions = []
    for scores in sigmoid_scores:
        top_class = int(np.argmax(scores))
        predictions.append(top_class if np.max(scores) > thresholds[top_class] else oos_label_id)
    return np.array(predictions)


def test_doc_matches_official_loop_on_random_logits():
    rng = np.random.default_rng(0)
    num_known = 30
    train_labels = rng.integers(0, num_known, size=900)
    train_logits = rng.normal(size=(900, num_known)) - 2
    train_logits[np.arange(900), train_labels] += rng.normal(3.5, 1.5, size=900)
    thresholds = doc_fit_thresholds(train_logits, train_labels)
    # Same fit, the official way: python lists and scipy norm.fit per class.
    from scipy.stats import norm

    train_scores = expit(train_logits)
    for class_id in range(num_known):
        class_scores = train_scores[train_labels == class_id, class_id]
        _, std = norm.fit([p for p in class_scores] + [2 - p for p in class_scores])
        assert thresholds[class_id] == pytest.approx(max(0.5, 1 - std), abs=1e-12)
    # Rows shifted down by 0..6 so that top scores fall on both sides of the thresholds (0.54..0.72).
    test_logits = rng.normal(size=(400, num_known)) * 2 - rng.uniform(0, 6, size=(400, 1))
    expected = _official_classify_doc(expit(test_logits), thresholds, num_known)
    assert (doc_predict(test_logits, thresholds) == expected).all()
    assert 0 < (expected == num_known).sum() < 400  # both outcomes exercised


def test_doc_input_errors():
    with pytest.raises(ValueError, match="shape \\(num_examples, num_labels\\)"):
        doc_fit_thresholds([0.1, 0.2], [0, 1])
    with pytest.raises(ValueError, match="2 rows of train_logits for 3 train_labels"):
        doc_fit_thresholds(np.zeros((2, 3)), [0, 1, 2])
    with pytest.raises(ValueError, match="train_labels` holds id 3"):
        doc_fit_thresholds(np.zeros((2, 3)), [0, 3])
    with pytest.raises(ValueError, match="Expected 3 thresholds"):
        doc_predict(np.zeros((2, 3)), [0.5, 0.5])


# ------------------------------------------------------------------------------------------------
# Out-of-scope scores and max-softmax
# ------------------------------------------------------------------------------------------------


def test_oos_scores_hand_computed():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    # softmax of (2, 0, 0): e^2 / (e^2 + 2) = 7.389056 / 9.389056 = 0.786986 -> score 0.213014;
    # uniform: 1/3 -> score 2/3.
    assert max_softmax_oos_scores(logits) == pytest.approx([1 - np.e**2 / (np.e**2 + 2), 2 / 3])
    # sigmoid(2) = 0.880797 -> 0.119203; sigmoid(0) = 0.5 -> 0.5.
    assert doc_oos_scores(logits) == pytest.approx([1 - 1 / (1 + np.exp(-2)), 0.5])


def test_max_softmax_predict_strictly_below_threshold():
    logits = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    top = softmax(logits, axis=1).max(axis=1)  # 0.786986, 0.576117
    assert max_softmax_predict(logits, 0.7).tolist() == [0, 3]
    assert max_softmax_predict(logits, 0.5).tolist() == [0, 1]
    # Equal to the threshold -> kept (only "< threshold" is rejected).
    assert max_softmax_predict(logits, top[1]).tolist() == [0, 1]
    assert max_softmax_predict(logits, 0.0, oos_label_id=30).tolist() == [0, 1]


def test_max_softmax_fit_threshold_on_validation():
    # K = 3. In-scope examples (label 0) have top probabilities 0.9 0.85 0.8, out-of-scope (label 3)
    # 0.5 and 0.4. Any threshold in (0.5, 0.8] separates them perfectly (open macro F1 is maximal);
    # candidates are data values, so the lowest perfect one is 0.8 itself (0.8 < 0.8 is false).
    top_probs = np.array([0.9, 0.85, 0.8, 0.5, 0.4])
    logits = np.log(np.stack([top_probs, (1 - top_probs) / 2, (1 - top_probs) / 2], axis=1))
    labels = np.array([0, 0, 0, 3, 3])
    threshold = max_softmax_fit_threshold(logits, labels)
    assert threshold == pytest.approx(0.8)
    assert max_softmax_predict(logits, threshold).tolist() == labels.tolist()
    with pytest.raises(ValueError, match="no out-of-scope example"):
        max_softmax_fit_threshold(logits[:3], labels[:3])
