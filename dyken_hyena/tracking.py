# Copyright 2026 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""Experiment tracking: a JSON-lines log that is always written, plus Accelerate's trackers with --with_tracking."""

import json
import time
from pathlib import Path

from accelerate.tracking import GeneralTracker
from accelerate.utils import is_tensorboard_available, is_wandb_available

TRACKERS_AVAILABLE = {"tensorboard": is_tensorboard_available, "wandb": is_wandb_available}


class JSONLinesTracker(GeneralTracker):
    """Appends one JSON object per `accelerator.log` call to `{logging_dir}/train_log.jsonl`. Accelerate has no
    JSONL tracker, so this is one, used like the built-in ones."""

    name = "jsonl"
    requires_logging_directory = True

    def __init__(self, run_name: str, logging_dir: str):
        super().__init__()
        self.path = Path(logging_dir) / "train_log.jsonl"
        self.file = None

    def start(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "a", encoding="utf-8")

    @property
    def tracker(self):
        return self.file

    def store_init_configuration(self, values: dict):
        self.log({"config": values})

    def log(self, values: dict, step: int | None = None, **kwargs):
        record = {"time": round(time.time(), 3), "step": step, **values}
        self.file.write(json.dumps(record, default=str) + "\n")
        self.file.flush()

    def finish(self):
        if self.file is not None:
            self.file.close()


def make_trackers(with_tracking: bool, report_to: str, logging_dir: Path) -> list:
    """The JSONL log, and with `with_tracking` the trackers of `report_to` ("all": every one that is installed)."""
    trackers = [JSONLinesTracker("dyken", str(logging_dir))]
    if not with_tracking or report_to == "none":
        return trackers
    if report_to == "all":
        return trackers + [name for name, available in TRACKERS_AVAILABLE.items() if available()]
    if not TRACKERS_AVAILABLE[report_to]():
        raise ValueError(f"--report_to {report_to}: the {report_to} package is not installed (pip install {report_to}).")
    return trackers + [report_to]
