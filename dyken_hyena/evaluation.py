# Copyright 2026 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""Evaluation of a trained model: predictions over a split, closed- and open-set metrics, mean ± std over seeds.

Metrics come from the packaged 🤗 Evaluate module (`dyken_hyena.metrics`), computed as the official MIntRec /
MIntRec2.0 code does; every value is a fraction in [0, 1]. On MIntRec2.0 with out-of-scope data, an out-of-scope
detector (DOC, as the official code, or max-softmax) turns the K-way logits into K+1-way predictions.
"""

import math

import numpy as np
import torch
from sklearn.metrics import f1_score
from tqdm.auto import tqdm

from datasets_scripts import MINTREC2_OOS_LABEL
from datasets_scripts.synthetic import NONVERBAL_INTENTS

from .metrics import (
    doc_fit_thresholds,
    doc_oos_scores,
    doc_predict,
    load_intent_metrics,
    max_softmax_fit_threshold,
    max_softmax_oos_scores,
    max_softmax_predict,
)


def predict(model, dataloader, accelerator, description: str = "evaluating") -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, K), labels (N,)) over the whole split: gather_for_metrics drops the samples the distributed sampler
    repeats to even out the last batch, so N is the split's size on any number of processes."""
    model.eval()
    all_logits, all_labels = [], []
    for batch in tqdm(dataloader, desc=description, leave=False, disable=not accelerator.is_local_main_process):
        labels = batch.pop("labels")
        with torch.no_grad():
            logits = model(**batch, validate_inputs=False).logits.float()  # the processor checked the batch
        logits, labels = accelerator.gather_for_metrics((logits, labels))
        all_logits.append(logits.cpu())
        all_labels.append(labels.cpu())
    return torch.cat(all_logits).numpy(), torch.cat(all_labels).numpy()


class IntentEvaluator:
    """Closed-set metrics over the K in-scope intents; open-set metrics with a fitted out-of-scope detector."""

    def __init__(self, accelerator, label_names: list, ood_detector: str):
        with accelerator.main_process_first():  # evaluate copies the module into its cache: once, then read
            self.closed_set = load_intent_metrics(keep_in_memory=True)
            self.open_set = load_intent_metrics("open_set", keep_in_memory=True)
        self.label_names = list(label_names)
        self.num_labels = len(label_names)
        self.ood_detector = ood_detector

    def closed_set_metrics(self, logits, labels) -> dict:
        """Closed-set metrics over the in-scope rows (argmax over the K intents)."""
        in_scope = labels < self.num_labels
        return self.closed_set.compute(predictions=logits[in_scope].argmax(-1), references=labels[in_scope])

    def fit_ood_detector(self, train_logits, train_labels, validation_logits=None, validation_labels=None):
        """DOC: per-class thresholds on the training logits (official). max_softmax: one threshold on dev + OOD dev."""
        if self.ood_detector == "doc":
            self.doc_thresholds = doc_fit_thresholds(train_logits, train_labels)
        else:
            self.softmax_threshold = max_softmax_fit_threshold(validation_logits, validation_labels, self.num_labels)

    def fitted_ood_detector(self) -> dict | None:
        """The detector `fit_ood_detector` fitted last, as a checkpoint's config saves it (`out_of_scope_detector`,
        which the checkpoint's pipeline applies): `{"method": "doc", "thresholds": [K floats], "label": "UNK"}` or
        `{"method": "max_softmax", "threshold": t, "label": "UNK"}`. None before any fit."""
        if self.ood_detector == "doc" and hasattr(self, "doc_thresholds"):
            return {"method": "doc", "thresholds": [float(value) for value in self.doc_thresholds],
                    "label": MINTREC2_OOS_LABEL}
        if self.ood_detector != "doc" and hasattr(self, "softmax_threshold"):
            return {"method": "max_softmax", "threshold": float(self.softmax_threshold), "label": MINTREC2_OOS_LABEL}
        return None

    def open_set_predictions(self, logits) -> tuple[np.ndarray, np.ndarray]:
        """(K+1-way predictions, out-of-scope scores) from the fitted detector."""
        if self.ood_detector == "doc":
            return doc_predict(logits, self.doc_thresholds, self.num_labels), doc_oos_scores(logits)
        return max_softmax_predict(logits, self.softmax_threshold, self.num_labels), max_softmax_oos_scores(logits)

    def open_set_metrics(self, logits, labels) -> dict:
        predictions, oos_scores = self.open_set_predictions(logits)
        return self.open_set.compute(
            predictions=predictions, references=labels, oos_scores=oos_scores, num_labels=self.num_labels
        )

    def per_class_f1(self, logits, labels) -> dict:
        """Test F1 of every in-scope intent (closed set), so the intents that need non-verbal cues are visible."""
        in_scope = labels < self.num_labels
        scores = f1_score(
            labels[in_scope], logits[in_scope].argmax(-1), labels=list(range(self.num_labels)), average=None,
            zero_division=0,
        )
        return {name: float(score) for name, score in zip(self.label_names, scores)}

    def evaluate(self, outputs: dict, open_set: bool, is_synthetic: bool) -> tuple[dict, np.ndarray]:
        """The metrics of one model from its `predict` outputs per split ("validation", "test"; for the open set
        also "train", whose logits fit DOC, and "ood_validation" when there is one). Returns the result and the test
        predictions (K+1-way for the open set)."""
        validation = self.closed_set_metrics(*outputs["validation"])
        test_logits, test_labels = outputs["test"]
        test = self.closed_set_metrics(test_logits, test_labels)
        result = {"validation": validation, "test": test}
        if open_set:
            validation_logits, validation_labels = outputs["validation"]
            if "ood_validation" in outputs:
                ood_logits, ood_labels = outputs["ood_validation"]
                validation_logits = np.concatenate([validation_logits, ood_logits])
                validation_labels = np.concatenate([validation_labels, ood_labels])
            self.fit_ood_detector(*outputs["train"], validation_logits, validation_labels)
            if "ood_validation" in outputs:
                validation.update(self.open_set_metrics(validation_logits, validation_labels))
            test.update(self.open_set_metrics(test_logits, test_labels))
        result["test_per_class_f1"] = self.per_class_f1(test_logits, test_labels)
        if is_synthetic:
            result["test_nonverbal"] = self.nonverbal_summary(result["test_per_class_f1"], test_logits, test_labels)
        result["num_examples"] = {name: int(len(labels)) for name, (_, labels) in outputs.items()}
        predictions = self.open_set_predictions(test_logits)[0] if open_set else test_logits.argmax(-1)
        return result, predictions

    def nonverbal_summary(self, per_class_f1: dict, logits, labels) -> dict:
        """On the synthetic data: how well the intents that only audio/video tell apart are recognised."""
        intents = [name for name in NONVERBAL_INTENTS if name in self.label_names]
        rows = np.isin(labels, [self.label_names.index(name) for name in intents])
        return {
            "intents": intents,
            "f1_macro": float(np.mean([per_class_f1[name] for name in intents])),
            "accuracy": float((logits[rows].argmax(-1) == labels[rows]).mean()) if rows.any() else float("nan"),
        }


def summarize(results: list[dict]) -> dict:
    """{fusion: {metric: {"mean", "std"}}} over seeds, from the test metrics (sample std, 0 for one seed)."""
    summary = {}
    for fusion in dict.fromkeys(run["fusion"] for run in results):
        values = {}
        for run in (run for run in results if run["fusion"] == fusion):
            metrics = dict(run["test"])
            if "test_nonverbal" in run:
                metrics["nonverbal_f1_macro"] = run["test_nonverbal"]["f1_macro"]
                metrics["nonverbal_accuracy"] = run["test_nonverbal"]["accuracy"]
            for metric, value in metrics.items():
                values.setdefault(metric, []).append(value)
        summary[fusion] = {}
        for metric, series in values.items():
            finite = [value for value in series if value is not None and math.isfinite(value)]
            summary[fusion][metric] = {
                "mean": float(np.mean(finite)) if finite else None,
                "std": float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0,
            }
    return summary
