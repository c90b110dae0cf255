# Copyright 2026 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
"""Checkpoints of a training job, and the rules that keep an earlier job's results safe.

A checkpoint is `accelerator.save_state` (model, optimizer, scheduler, every process's RNG states, and the run's
`TrainingProgress`, registered with `accelerator.register_for_checkpointing`) written into a staging folder, then a
completion marker, then an atomic rename to `checkpoint-<step>`. A kill at any moment leaves the earlier complete
checkpoints or the new one, never a half-written folder under a checkpoint name.

A used `--output_dir` is only written to when the user says how (`--overwrite_output_dir` or
`--resume_from_checkpoint`), and a run is only continued or reused under the options it was made with.
"""

import argparse
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from accelerate.logging import get_logger
from safetensors.torch import load_file, save_file

logger = get_logger(__name__)

CHECKPOINT_PREFIX = "checkpoint-"
COMPLETE_MARKER = "checkpoint_complete.json"  # also names the run (fusion, seed) the checkpoint belongs to
RUN_ARGUMENTS = "run_arguments.json"  # the options of the run, in each checkpoint and in run_result.json
BEST_MODEL_WEIGHTS = "best_model.safetensors"

# Options that may name a folder or file of the training machine.
LOCAL_PATH_OPTIONS = ("dataset", "data_dir", "output_dir", "model_name_or_path", "config", "resume_from_checkpoint")
# Options that do not change what a run computes: a resumed or reused run may differ from its record in these.
OPTIONS_OUTSIDE_A_RUN = {
    "config", "preset", "fusion", "seeds", "output_dir", "overwrite_output_dir", "resume_from_checkpoint",
    "keep_checkpoints", "checkpointing_steps", "checkpoints_total_limit", "logging_steps", "with_tracking",
    "report_to", "dataloader_num_workers", "per_device_eval_batch_size", "cpu", "eval_only",
    "push_to_hub", "hub_model_id", "hub_private_repo", "hub_token",
}


class JobSetupError(ValueError):
    """The job cannot start as asked (a used output folder, a resume under other options); nothing was changed."""


@dataclass
class TrainingProgress:
    """Everything besides model/optimizer/scheduler/RNG that a resumed run needs to continue exactly."""

    fusion: str
    seed: int
    epoch: int = 0  # the epoch in progress
    batches_done_in_epoch: int = 0
    completed_steps: int = 0  # optimizer steps
    epoch_loss_sum: float = 0.0
    epoch_loss_batches: int = 0
    loss_since_log: float = 0.0
    batches_since_log: int = 0
    best_score: float = -math.inf
    best_epoch: int | None = None
    best_validation: dict = field(default_factory=dict)
    evaluations_without_improvement: int = 0
    stopped_early: bool = False
    diverged_at_step: int | None = None  # the optimizer step whose loss was not finite; training stopped there
    history: list = field(default_factory=list)  # one entry per evaluation: epoch, step, train_loss, dev metrics
    loss_log: list = field(default_factory=list)  # [step, loss, learning rate] every --logging_steps


class ProgressState:
    """The progress of the run in progress, saved and restored by `accelerator.save_state` / `load_state`.

    Registered once per job with `accelerator.register_for_checkpointing`; each run puts its own `TrainingProgress`
    in `current`."""

    def __init__(self):
        self.current: TrainingProgress | None = None

    def state_dict(self) -> dict:
        return asdict(self.current)

    def load_state_dict(self, state: dict) -> None:
        self.current = TrainingProgress(**state)


def complete_checkpoints(checkpoints_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first. A folder is complete when it carries the marker, which is written into the
    staging folder only after every file (all processes' RNG states included) is there."""
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for path in checkpoints_dir.glob(f"{CHECKPOINT_PREFIX}*"):
        if path.name[len(CHECKPOINT_PREFIX):].isdigit() and (path / COMPLETE_MARKER).is_file():
            found.append(path)
    return sorted(found, key=lambda path: int(path.name[len(CHECKPOINT_PREFIX):]))


def save_checkpoint(accelerator, checkpoints_dir: Path, progress: TrainingProgress, best_state: dict | None,
                    limit: int, arguments: dict) -> None:
    """Collective: every process must call it. Keeps the newest `limit` complete checkpoints."""
    name = f"{CHECKPOINT_PREFIX}{progress.completed_steps}"
    staging, final = checkpoints_dir / f".staging-{name}", checkpoints_dir / name
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)  # left over from a killed attempt
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))  # model, optimizer, scheduler, RNG states, the registered progress
    if accelerator.is_main_process:
        write_json(staging / RUN_ARGUMENTS, arguments)  # what a resume is checked against
        if best_state is not None:
            save_file(best_state, str(staging / BEST_MODEL_WEIGHTS))
    accelerator.wait_for_everyone()  # all RNG files are written
    if accelerator.is_main_process:
        with open(staging / COMPLETE_MARKER, "w", encoding="utf-8") as marker:
            json.dump({"fusion": progress.fusion, "seed": progress.seed, "completed_steps": progress.completed_steps,
                       "time": time.time()}, marker)
            marker.flush()
            os.fsync(marker.fileno())
        if final.exists():  # the same step saved again after a resume
            shutil.rmtree(final)
        os.rename(staging, final)
        for old in complete_checkpoints(checkpoints_dir)[:-limit]:
            shutil.rmtree(old)
        logger.info(f"Saved checkpoint {final}")
    accelerator.wait_for_everyone()


def load_checkpoint(accelerator, checkpoint: Path) -> dict | None:
    """Restores the training state (the registered progress included); returns the best weights so far, if any."""
    if not (checkpoint / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(f"{checkpoint} is not a complete checkpoint: {COMPLETE_MARKER} is missing.")
    accelerator.load_state(str(checkpoint))
    best_weights = checkpoint / BEST_MODEL_WEIGHTS
    return load_file(str(best_weights)) if best_weights.is_file() else None


def write_json(path: Path, value) -> None:
    """Atomic JSON write (temp file + rename); NaN (undefined metric) becomes null."""
    def clean(item):
        if isinstance(item, float) and not math.isfinite(item):
            return None
        if isinstance(item, dict):
            return {str(key): clean(value) for key, value in item.items()}
        if isinstance(item, (list, tuple)):
            return [clean(value) for value in item]
        if isinstance(item, np.generic):
            return clean(item.item())
        return item

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(clean(value), indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(temporary, path)


def is_local_path(value) -> bool:
    return isinstance(value, str) and (Path(value).is_absolute() or Path(value).exists())


def training_arguments(args: argparse.Namespace, fusion: str, seed: int) -> dict:
    """training_args.json of a checkpoint, which is pushed with it: no token, and a local path is cut to its last
    component (`/data/MIntRec` -> `MIntRec`), so no folder of the training machine is published."""
    values = {key: value for key, value in vars(args).items() if key != "hub_token"}
    for key in LOCAL_PATH_OPTIONS:
        if is_local_path(values[key]):
            values[key] = Path(values[key]).resolve().name
    return {**values, "fusion": fusion, "seed": seed}


def run_arguments(args: argparse.Namespace, fusion: str, seed: int, num_processes: int) -> dict:
    """The options that determine one run's result, recorded with its checkpoints and its run_result.json (local
    files, never pushed), with local paths resolved so `./data` and `/home/me/data` compare equal."""
    values = {key: value for key, value in vars(args).items() if key not in OPTIONS_OUTSIDE_A_RUN}
    for key in LOCAL_PATH_OPTIONS:
        if key in values and is_local_path(values[key]):
            values[key] = str(Path(values[key]).resolve())
    return {**values, "fusion": fusion, "seed": seed, "num_processes": num_processes}


def check_output_dir(args: argparse.Namespace, output_dir: Path) -> None:
    """As in the transformers examples: a used output folder is only written to when the user says how."""
    if output_dir.exists() and not output_dir.is_dir():
        raise JobSetupError(f"--output_dir {output_dir} is a file, not a folder.")
    entries = sorted(entry.name for entry in output_dir.iterdir()) if output_dir.is_dir() else []
    if entries and not (args.overwrite_output_dir or args.resume_from_checkpoint):
        shown = ", ".join(entries[:6]) + (", ..." if len(entries) > 6 else "")
        raise JobSetupError(
            f"--output_dir {output_dir} is not empty (found: {shown}). Pass --resume_from_checkpoint latest to continue "
            "its job, --overwrite_output_dir to start over there, or choose another --output_dir."
        )


def clear_earlier_job(args: argparse.Namespace, output_dir: Path) -> None:
    """--overwrite_output_dir, once data and options have been checked: removes what the new job would otherwise
    mix with (results, logs, plots, and the checkpoints and run folders of this job's fusions and seeds)."""
    stale = [output_dir / name for name in ("results.json", "results.md", "plots", "logs")]
    for fusion in args.fusion:
        stale += [output_dir / fusion / "best_checkpoint"] + [output_dir / fusion / f"seed_{s}" for s in args.seeds]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


@dataclass
class RunPlan:
    """What one (fusion, seed) run of the job does: train from scratch, continue from a checkpoint, or reuse the
    result of a finished run (--resume_from_checkpoint)."""

    fusion: str
    seed: int
    resume_from: Path | None = None
    reuse_result: Path | None = None


def differing_options(recorded: dict, current: dict) -> list[str]:
    keys = [key for key in current if key not in OPTIONS_OUTSIDE_A_RUN]
    keys += [key for key in recorded if key not in current and key not in OPTIONS_OUTSIDE_A_RUN]
    return [f"--{key} {recorded.get(key)!r} -> {current.get(key)!r}" for key in keys if recorded.get(key) != current.get(key)]


def plan_runs(args: argparse.Namespace, output_dir: Path, num_processes: int) -> list[RunPlan]:
    """Every run of the job, decided before any work. A run that continues or reuses earlier work must have been
    made with the same options; otherwise the job is refused, naming the runs and the options that differ."""
    plans, mismatches = [], []
    for fusion in args.fusion:
        for seed in args.seeds:
            run_dir = output_dir / fusion / f"seed_{seed}"
            plan = RunPlan(fusion, seed, resume_from=find_resume_checkpoint(args, run_dir, fusion, seed))
            finished = run_dir / "run_result.json"
            asked_for_this_checkpoint = plan.resume_from is not None and plan.resume_from == Path(args.resume_from_checkpoint)
            if args.resume_from_checkpoint and finished.is_file() and not asked_for_this_checkpoint:
                plan.resume_from, plan.reuse_result = None, finished
            plans.append(plan)
            record = plan.reuse_result or (plan.resume_from / RUN_ARGUMENTS if plan.resume_from else None)
            if record is None:
                continue
            recorded = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
            recorded = recorded.get("arguments", {}) if record.name == "run_result.json" else recorded
            current = run_arguments(args, fusion, seed, num_processes)
            if not recorded:
                mismatches.append(f"  {fusion}/seed_{seed} ({record}): no record of its options")
            elif differences := differing_options(recorded, current):
                mismatches.append(f"  {fusion}/seed_{seed} ({record}): " + "; ".join(differences))
    if mismatches:
        raise JobSetupError(
            "--resume_from_checkpoint: these runs were made with other options, so continuing or reusing them would "
            "mix two different jobs:\n" + "\n".join(mismatches) + "\nResume with the recorded options, or pass "
            "--overwrite_output_dir (without --resume_from_checkpoint) to start these runs over."
        )
    return plans


def find_resume_checkpoint(args: argparse.Namespace, run_dir: Path, fusion: str, seed: int) -> Path | None:
    if args.resume_from_checkpoint in (None, "latest"):
        checkpoints = complete_checkpoints(run_dir / "checkpoints")
        return checkpoints[-1] if checkpoints and args.resume_from_checkpoint == "latest" else None
    path = Path(args.resume_from_checkpoint)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {path}: no such folder (expected 'latest' or a checkpoint folder).")
    if not (path / COMPLETE_MARKER).is_file():
        raise FileNotFoundError(f"--resume_from_checkpoint {path}: not a complete checkpoint ({COMPLETE_MARKER} missing).")
    marker = json.loads((path / COMPLETE_MARKER).read_text(encoding="utf-8"))
    if (marker.get("fusion"), marker.get("seed")) == (fusion, seed):
        return path
    checkpoints = complete_checkpoints(run_dir / "checkpoints")  # the other runs continue as with "latest"
    return checkpoints[-1] if checkpoints else None
