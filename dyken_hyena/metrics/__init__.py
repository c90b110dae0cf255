"""The intent metrics and out-of-scope detectors of MIntRec / MIntRec2.0.

`intent_metrics/` is an 🤗 Evaluate module (a folder holding `intent_metrics.py`); `load_intent_metrics` loads it from
the installed package, offline:

    from dyken_hyena.metrics import load_intent_metrics
    closed_set = load_intent_metrics()                # accuracy, macro/weighted F1, precision, recall
    open_set = load_intent_metrics("open_set")        # F1-IS, F1-OOS, open accuracy / F1, AUROC, FPR95

which is `evaluate.load(str(INTENT_METRICS_PATH), config_name)`. The out-of-scope detectors (DOC, max-softmax) that
turn K-way logits into K+1-way predictions are plain functions of the same module, re-exported here.
"""

from importlib import resources
from pathlib import Path

from .intent_metrics.intent_metrics import (
    closed_set_metrics,
    doc_fit_thresholds,
    doc_oos_scores,
    doc_predict,
    max_softmax_fit_threshold,
    max_softmax_oos_scores,
    max_softmax_predict,
    open_set_metrics,
)

# The folder evaluate.load reads; inside an installed wheel as in a checkout.
INTENT_METRICS_PATH = Path(str(resources.files(__name__) / "intent_metrics"))


def load_intent_metrics(config_name: str = "default", **kwargs):
    """`evaluate.load` of the packaged module: `"default"` (closed set) or `"open_set"`."""
    import evaluate

    return evaluate.load(str(INTENT_METRICS_PATH), config_name, **kwargs)


__all__ = [
    "INTENT_METRICS_PATH", "load_intent_metrics", "closed_set_metrics", "open_set_metrics", "doc_fit_thresholds",
    "doc_oos_scores", "doc_predict", "max_softmax_fit_threshold", "max_softmax_oos_scores", "max_softmax_predict",
]
