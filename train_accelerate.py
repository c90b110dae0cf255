#!/usr/bin/env python
# Copyright 2026 The DyKen-Hyena contributors. Licensed under the Apache License, Version 2.0.
r"""Train and evaluate DyKen-Hyena and its baselines (MAG-BERT, text-only BERT) on MIntRec / MIntRec2.0 with 🤗 Accelerate.

    python train_accelerate.py                                   # the default job (see below)
    python train_accelerate.py --config mintrec --data_dir /data/MIntRec          # the paper's protocol
    python train_accelerate.py --preset mintrec2 --dataset mintrec2 --data_dir /data/MIntRec2.0 \
        --model_name_or_path bert-base-uncased --fusion dyken text --seeds 0 1 2
    python train_accelerate.py --eval_only --model_name_or_path outputs/dyken/best_checkpoint --output_dir eval
    accelerate launch --config_file dyken_hyena/configs/accelerate_multi_gpu.yaml train_accelerate.py --config mintrec ...

With no arguments, the script trains DyKen-Hyena and the baselines on the same data and budget, on the built-in
synthetic MIntRec-format release (written on first use), with the packaged all-MiniLM-L6-v2 encoder, on CPU, prints
the results table and writes to ./outputs:

    results.json, results.md          per run and mean ± std per fusion (metrics are fractions in [0, 1])
    {fusion}/best_checkpoint/         the best seed's model (save_pretrained + code + processor + model card)
    {fusion}/seed_{seed}/             checkpoints of an unfinished run (accelerator.save_state), run_result.json
    logs/                             train_log.jsonl (always), tracker logs with --with_tracking
    plots/                            training curves, confusion matrices, DyKen's per-token kernels

Each (fusion, seed) is one run: train with early stopping on a dev metric, keep the best weights, then evaluate them
on dev and test; a run whose training loss stops being finite ends there and reports its best weights so far.
MIntRec2.0 with out-of-scope data adds out-of-scope detection (DOC thresholds fitted on the training logits, as the
official code does) and optional outlier exposure on the ood_train split.
"""

import argparse
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # tokenizers' threads would fight the DataLoader's

import datasets
import torch
import torch.nn.functional as F
import transformers
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import DistributedType, set_seed
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_scheduler

from dyken_hyena import arguments
from dyken_hyena.checkpoints import (
    JobSetupError,
    ProgressState,
    TrainingProgress,
    check_output_dir,
    clear_earlier_job,
    is_local_path,
    load_checkpoint,
    plan_runs,
    run_arguments,
    save_checkpoint,
    training_arguments,
    write_json,
)
from dyken_hyena.data import (
    IntentData,
    concatenate_batches,
    load_intent_data,
    make_dataloader,
    release_feature_models,
    sample_ood_batch,
)
from dyken_hyena.evaluation import IntentEvaluator, predict, summarize
from dyken_hyena.hub import HubUploadError
from dyken_hyena.publishing import CheckpointError, push_checkpoint, render_model_card
from dyken_hyena.reporting import make_plots, results_markdown
from dyken_hyena.tracking import make_trackers
from modeling_dyken import DyKenForSequenceClassification, resolve_text_model_path
from pipeline_dyken import MultimodalIntentRecognitionPipeline
from processing_dyken import DyKenProcessor

logger = get_logger(__name__)

# The Hub id of the text encoder the packaged offline copy comes from (the model card's `base_model`).
PACKAGED_ENCODER_HUB_IDS = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}


def parse_args(argv=None):
    """The options (dyken_hyena/arguments.py): defaults < --preset < --config file < command-line flags."""
    return arguments.parse_args(argv, description=__doc__)


# ---------------------------------------------------------------------------------------------------------------
# Model and optimizer
# ---------------------------------------------------------------------------------------------------------------


def build_model(args, fusion: str, data: IntentData, processor: DyKenProcessor) -> DyKenForSequenceClassification:
    """A new model on a pretrained text encoder, or (--model_name_or_path a DyKen checkpoint) that checkpoint."""
    if arguments.dyken_checkpoint_fusion(args.model_name_or_path) is not None:
        model = DyKenForSequenceClassification.from_pretrained(args.model_name_or_path)
        checkpoint_labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if checkpoint_labels != data.label_names:
            raise JobSetupError(f"--model_name_or_path {args.model_name_or_path} predicts {checkpoint_labels}, but "
                                f"the data's intents are {data.label_names}.")
        return model
    config_overrides = dict(
        fusion=fusion,
        short_kernel_size=args.short_kernel_size,
        kernel_normalization=args.kernel_normalization,
        use_dynamic_short_conv=args.use_dynamic_short_conv,
        use_long_conv=args.use_long_conv,
        use_gating=args.use_gating,
        max_text_length=processor.max_text_length,
        max_audio_length=processor.max_audio_length,
        max_video_length=processor.max_video_length,
        num_labels=len(data.label_names),
        id2label=dict(enumerate(data.label_names)),
        label2id={name: index for index, name in enumerate(data.label_names)},
    )
    # Unset: the config's default per fusion. MAG-BERT adds one audio and one video vector per token, so it keeps
    # its default (ctc) when --alignment none is asked for DyKen in a multi-model run.
    if args.alignment is not None and not (fusion == "mag" and args.alignment == "none"):
        config_overrides["alignment"] = args.alignment
    if args.normalize_nonverbal_features is not None:
        config_overrides["normalize_nonverbal_features"] = args.normalize_nonverbal_features
    text_config_overrides = {}
    if args.dropout >= 0:  # the classifier's dropout defaults to the encoder's hidden_dropout_prob
        text_config_overrides = dict(hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout)
        config_overrides.update(cross_attention_dropout=args.dropout, hyena_dropout=args.dropout)
    config_overrides.update(args.model_config_overrides)  # the JSON option wins over the flags above
    return DyKenForSequenceClassification.from_text_pretrained(
        args.model_name_or_path, text_config_overrides=text_config_overrides, **config_overrides
    )


def optimizer_parameter_groups(model, args) -> list[dict]:
    """AdamW groups: the pretrained text encoder at --learning_rate, DyKen's Hyena operator (it rewrites the
    encoder's input) at --modulation_learning_rate, the other new modules (those that read audio and video, the
    classifier) at --fusion_learning_rate; weight decay only on matrices (not on biases and LayerNorm weights), the
    Hyena operator's at --modulation_weight_decay when given."""
    groups = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name.startswith("dyken.text_model."):
            role, learning_rate = "encoder", args.learning_rate
        elif name.startswith("dyken.fusion.hyena."):
            role, learning_rate = "modulation", args.modulation_learning_rate
        else:
            role, learning_rate = "new", args.fusion_learning_rate
        decay = parameter.dim() >= 2
        key = (role, decay)
        if key not in groups:
            weight_decay = args.weight_decay
            if role == "modulation" and args.modulation_weight_decay is not None:
                weight_decay = args.modulation_weight_decay
            groups[key] = dict(params=[], lr=learning_rate, weight_decay=weight_decay if decay else 0.0)
        groups[key]["params"].append(parameter)
    return [groups[key] for key in sorted(groups)]


def clip_gradients(accelerator, model, args) -> None:
    """Clips to --max_grad_norm: one global norm, or (`--grad_clipping separate`) the text model (encoder and
    classifier head) and the fusion modules each on their own, so that neither's gradient shrinks the other's step;
    text-only BERT is clipped the same either way. FSDP and DeepSpeed shard the gradients and clip them globally."""
    if args.grad_clipping == "global" or accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED):
        accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
        return
    accelerator.unscale_gradients()  # fp16: once per step, before any norm is taken
    text_model, fusion = [], []
    for name, parameter in accelerator.unwrap_model(model).named_parameters():
        if parameter.grad is not None:
            (fusion if name.startswith("dyken.fusion.") else text_model).append(parameter)
    for parameters in (text_model, fusion):
        if parameters:
            torch.nn.utils.clip_grad_norm_(parameters, args.max_grad_norm)


# ---------------------------------------------------------------------------------------------------------------
# One run: a fusion and a seed
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class RunContext:
    """What all runs of a job share."""

    args: argparse.Namespace
    accelerator: Accelerator
    data: IntentData
    processor: DyKenProcessor
    evaluator: IntentEvaluator
    output_dir: Path
    progress_state: ProgressState  # registered for checkpointing once; each run puts its progress in it


def eval_dataloaders(ctx: RunContext) -> dict:
    """Dev and test; for the open set also the training split (DOC fits its thresholds on the training logits) and
    the out-of-scope dev split when there is one."""
    splits = ctx.data.splits
    names = ["validation", "test"]
    if ctx.data.oos_label_id is not None:
        names += ["train"] + (["ood_validation"] if "ood_validation" in splits else [])
    return {name: make_dataloader(splits[name], ctx.processor, ctx.args.per_device_eval_batch_size, False,
                                  ctx.args.dataloader_num_workers) for name in names}


def evaluate_model(ctx: RunContext, model, dataloaders: dict) -> tuple[dict, dict]:
    """The model's metrics on every evaluation split; its test predictions and, for the open set, the out-of-scope
    detector fitted on its logits (saved with the checkpoint)."""
    outputs = {name: predict(model, loader, ctx.accelerator, f"evaluating {name}") for name, loader in dataloaders.items()}
    open_set = ctx.data.oos_label_id is not None
    result, test_predictions = ctx.evaluator.evaluate(outputs, open_set, ctx.data.is_synthetic)
    return result, {"test_predictions": test_predictions.tolist(), "test_references": outputs["test"][1].tolist(),
                    "out_of_scope_detector": ctx.evaluator.fitted_ood_detector() if open_set else None}


def evaluate_on_dev(ctx: RunContext, model, dataloader, progress: TrainingProgress, run_name: str, epoch) -> bool:
    """Dev evaluation at the end of epoch `epoch` (a fraction when the step budget ends inside an epoch): records the
    history and the early-stopping counter; True when this is the best epoch so far."""
    args, accelerator = ctx.args, ctx.accelerator
    metrics = ctx.evaluator.closed_set_metrics(*predict(model, dataloader, accelerator, f"{run_name} dev"))
    totals = accelerator.reduce(
        torch.tensor([progress.epoch_loss_sum, progress.epoch_loss_batches], device=accelerator.device), "sum"
    )
    train_loss = (totals[0] / totals[1].clamp(min=1)).item()
    progress.history.append({"epoch": epoch, "step": progress.completed_steps, "train_loss": train_loss, "validation": metrics})
    accelerator.log({f"{run_name}/train_loss_epoch": train_loss, **{f"{run_name}/validation_{k}": v for k, v in metrics.items()}},
                    step=progress.completed_steps)
    score = metrics[args.metric_for_best_model]
    improved = score > progress.best_score
    if improved:
        progress.best_score, progress.best_epoch, progress.best_validation = score, epoch, metrics
        progress.evaluations_without_improvement = 0
    else:
        progress.evaluations_without_improvement += 1
    progress.stopped_early = progress.evaluations_without_improvement >= args.early_stopping_patience
    logger.info(f"[{run_name}] epoch {epoch}: train loss {train_loss:.4f}, dev {args.metric_for_best_model} {score:.4f} "
                f"(best {progress.best_score:.4f} at epoch {progress.best_epoch})")
    return improved


class TrainingDivergedError(RuntimeError):
    """A run's training loss stopped being finite before it had any weights worth keeping."""


def in_any_process(accelerator, flag: bool) -> bool:
    """True in every process when `flag` is true in any, so that all processes leave a loop together."""
    return accelerator.reduce(torch.tensor(float(flag), device=accelerator.device), "sum").item() > 0


def stop_diverged_run(progress: TrainingProgress, run_name: str, evaluated_before: bool) -> None:
    """The training loss stopped being finite: the run ends with the best weights of its dev evaluations so far."""
    step, epoch = progress.diverged_at_step, progress.epoch + 1
    advice = ("Lower --learning_rate, --fusion_learning_rate or --modulation_learning_rate, or clip harder "
              "(--max_grad_norm).")
    if not evaluated_before:
        raise TrainingDivergedError(
            f"[{run_name}] the training loss is not finite at optimizer step {step} (epoch {epoch}), before the first "
            f"dev evaluation: there are no weights to keep. {advice}"
        )
    logger.error(
        f"[{run_name}] the training loss is not finite at optimizer step {step} (epoch {epoch}): training stops, and "
        f"the run reports its best weights so far (epoch {progress.best_epoch}). {advice}"
    )


def training_step(ctx: RunContext, model, batch: dict, seed: int, batch_index: int) -> torch.Tensor:
    """The loss of one batch: cross-entropy, plus outlier exposure on out-of-scope utterances when asked."""
    if not ctx.args.outlier_exposure_weight:
        return model(**batch).loss
    in_scope = batch["labels"].shape[0]
    labels = batch.pop("labels")
    ood_batch = sample_ood_batch(ctx.data, ctx.processor, ctx.args.per_device_train_batch_size, seed, batch_index,
                                 ctx.accelerator.process_index)
    logits = model(**concatenate_batches(batch, {k: v.to(ctx.accelerator.device) for k, v in ood_batch.items()})).logits
    # Outlier exposure (Hendrycks et al., 2019): cross-entropy of the softmax over the intents to the uniform
    # distribution on the out-of-scope utterances.
    uniform_cross_entropy = -F.log_softmax(logits[in_scope:].float(), dim=-1).mean(-1).mean()
    return F.cross_entropy(logits[:in_scope].float(), labels) + ctx.args.outlier_exposure_weight * uniform_cross_entropy


def train_run(ctx: RunContext, fusion: str, seed: int, resume_from: Path | None) -> dict:
    """Trains one model with early stopping, evaluates its best weights on dev and test; returns the run's result."""
    args, accelerator, data = ctx.args, ctx.accelerator, ctx.data
    run_name = f"{fusion}/seed_{seed}"
    run_dir = ctx.output_dir / fusion / f"seed_{seed}"
    checkpoints_dir = run_dir / "checkpoints"
    arguments_record = run_arguments(args, fusion, seed, accelerator.num_processes)

    set_seed(seed)  # the new modules' initialisation and the dropout masks depend on the seed
    model = build_model(args, fusion, data, ctx.processor)
    optimizer = torch.optim.AdamW(optimizer_parameter_groups(model, args))
    shuffle_generator = torch.Generator()
    train_dataloader = make_dataloader(data.splits["train"], ctx.processor, args.per_device_train_batch_size, True,
                                       args.dataloader_num_workers, shuffle_generator)
    dataloaders = eval_dataloaders(ctx)
    model, optimizer, train_dataloader, *prepared = accelerator.prepare(model, optimizer, train_dataloader, *dataloaders.values())
    dataloaders = dict(zip(dataloaders, prepared))

    # Budget, from the per-process dataloader. The prepared scheduler steps once per process per optimizer step.
    steps_per_epoch = math.ceil(len(train_dataloader) / args.gradient_accumulation_steps)
    max_train_steps = args.max_train_steps or args.num_train_epochs * steps_per_epoch
    num_epochs = math.ceil(max_train_steps / steps_per_epoch)
    num_warmup_steps = args.num_warmup_steps if args.num_warmup_steps is not None else int(args.warmup_ratio * max_train_steps)
    lr_scheduler = accelerator.prepare(get_scheduler(
        args.lr_scheduler_type, optimizer=optimizer, num_warmup_steps=num_warmup_steps * accelerator.num_processes,
        num_training_steps=max_train_steps * accelerator.num_processes,
    ))

    ctx.progress_state.current = progress = TrainingProgress(fusion, seed)
    best_state = None
    if resume_from is not None:
        best_state = load_checkpoint(accelerator, resume_from)  # restores ctx.progress_state.current too
        progress = ctx.progress_state.current
        if (progress.fusion, progress.seed) != (fusion, seed):
            raise JobSetupError(f"{resume_from} belongs to run {progress.fusion}/seed_{progress.seed}, not {run_name}.")
        accelerator.step = progress.batches_done_in_epoch  # gradient-accumulation phase within the epoch
        logger.info(f"[{run_name}] resumed from {resume_from} at epoch {progress.epoch}, step {progress.completed_steps}")
    checkpoint_every = int(args.checkpointing_steps) if args.checkpointing_steps.isdigit() else None

    def checkpoint():
        save_checkpoint(accelerator, checkpoints_dir, progress, best_state, args.checkpoints_total_limit, arguments_record)

    progress_bar = tqdm(total=max_train_steps, initial=progress.completed_steps, desc=run_name,
                        disable=not accelerator.is_local_main_process)
    stop = progress.stopped_early or progress.completed_steps >= max_train_steps
    while not stop and progress.epoch < num_epochs:
        model.train()
        # The order of epoch e depends on (seed, e) only; a resumed epoch skips the batches it already did.
        shuffle_generator.manual_seed(seed * 100_003 + progress.epoch)
        epoch_dataloader = train_dataloader
        if progress.batches_done_in_epoch:
            epoch_dataloader = accelerator.skip_first_batches(train_dataloader, progress.batches_done_in_epoch)
        non_finite_loss = False  # in this process, since the last optimizer step
        for batch in epoch_dataloader:
            batch_index = progress.epoch * len(train_dataloader) + progress.batches_done_in_epoch
            with accelerator.accumulate(model):
                loss = training_step(ctx, model, batch, seed, batch_index)
                loss_value = loss.item()
                non_finite_loss |= not math.isfinite(loss_value)
                accelerator.backward(loss)
                # A non-finite loss makes every weight NaN at the next step: stop before it, in every process at once.
                if accelerator.sync_gradients and in_any_process(accelerator, non_finite_loss):
                    progress.diverged_at_step = progress.completed_steps + 1
                    break
                if accelerator.sync_gradients and args.max_grad_norm > 0:
                    clip_gradients(accelerator, model, args)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            progress.batches_done_in_epoch += 1
            progress.epoch_loss_sum += loss_value
            progress.epoch_loss_batches += 1
            progress.loss_since_log += loss_value
            progress.batches_since_log += 1
            if not accelerator.sync_gradients:
                continue
            progress.completed_steps += 1
            progress_bar.update(1)
            if progress.completed_steps % args.logging_steps == 0:
                mean_loss, learning_rate = progress.loss_since_log / progress.batches_since_log, lr_scheduler.get_last_lr()[-1]
                progress.loss_log.append([progress.completed_steps, mean_loss, learning_rate])
                progress.loss_since_log, progress.batches_since_log = 0.0, 0
                accelerator.log({f"{run_name}/train_loss": mean_loss, f"{run_name}/learning_rate": learning_rate},
                                step=progress.completed_steps)
                progress_bar.set_postfix(loss=f"{mean_loss:.4f}")
            if progress.completed_steps >= max_train_steps:
                break
            if checkpoint_every and progress.completed_steps % checkpoint_every == 0:
                checkpoint()

        if progress.diverged_at_step is not None:
            stop_diverged_run(progress, run_name, best_state is not None)
            break
        epoch = progress.epoch + 1 if progress.batches_done_in_epoch >= len(train_dataloader) else round(
            progress.epoch + progress.batches_done_in_epoch / len(train_dataloader), 3)
        if evaluate_on_dev(ctx, model, dataloaders["validation"], progress, run_name, epoch):
            best_state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in accelerator.get_state_dict(model).items()}
        stop = progress.stopped_early or progress.completed_steps >= max_train_steps
        progress.epoch += 1
        progress.batches_done_in_epoch = 0
        progress.epoch_loss_sum, progress.epoch_loss_batches = 0.0, 0
        if args.checkpointing_steps == "epoch" and not stop and progress.epoch < num_epochs:
            checkpoint()
    progress_bar.close()

    # The best weights, evaluated on dev and test (and, for the open set, the training logits that fit DOC).
    accelerator.unwrap_model(model).load_state_dict(best_state)
    result, details = evaluate_model(ctx, model, dataloaders)
    result = {"fusion": fusion, "seed": seed, **result, "best_epoch": progress.best_epoch,
              "stopped_early": progress.stopped_early, "completed_steps": progress.completed_steps,
              "diverged_at_step": progress.diverged_at_step}
    details.update(history=progress.history, loss_log=progress.loss_log)
    if accelerator.is_main_process:
        save_best_checkpoint(ctx, fusion, seed, result, accelerator.unwrap_model(model),
                             out_of_scope_detector=details["out_of_scope_detector"])
        write_json(run_dir / "run_result.json", {"result": result, "details": details, "arguments": arguments_record})
        if not args.keep_checkpoints:
            shutil.rmtree(checkpoints_dir, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.free_memory()
    return {"result": result, "details": details}


def evaluate_checkpoint(ctx: RunContext) -> dict:
    """--eval_only: the metrics of the checkpoint given as --model_name_or_path, as a finished run reports them."""
    model = DyKenForSequenceClassification.from_pretrained(ctx.args.model_name_or_path)
    dataloaders = eval_dataloaders(ctx)
    model, *prepared = ctx.accelerator.prepare(model, *dataloaders.values())
    result, details = evaluate_model(ctx, model, dict(zip(dataloaders, prepared)))
    training_args_file = Path(ctx.args.model_name_or_path) / "training_args.json"
    seed = json.loads(training_args_file.read_text(encoding="utf-8")).get("seed") if training_args_file.is_file() else None
    result = {"fusion": model.config.fusion, "seed": seed, **result, "best_epoch": None}
    return {"result": result, "details": {**details, "history": [], "loss_log": []}}


# ---------------------------------------------------------------------------------------------------------------
# Save and push: the best checkpoint per fusion, results.json / results.md, plots, model cards, the Hub
# ---------------------------------------------------------------------------------------------------------------


def save_best_checkpoint(ctx: RunContext, fusion: str, seed: int, result: dict, model,
                         out_of_scope_detector: dict | None = None) -> None:
    """Main process: replaces {fusion}/best_checkpoint when this run has the best dev score of its fusion so far.
    Written into a staging folder and renamed, so the folder is always one whole checkpoint.

    The checkpoint is saved through its pipeline: weights, config, processor, and the code of the model, the processor
    (with extraction_dyken.py) and the pipeline, which config.json names (`custom_pipelines`), so that
    `pipeline(model=folder, trust_remote_code=True)` runs it. An open-set run's fitted out-of-scope detector
    (`IntentEvaluator.fitted_ood_detector`) goes into config.json as `out_of_scope_detector`: the pipeline answers
    "UNK" by the rule the run was scored with."""
    best_dir = ctx.output_dir / fusion / "best_checkpoint"
    record = best_dir / "training_args.json"
    dev_score = result["validation"][ctx.args.metric_for_best_model]
    if record.is_file() and json.loads(record.read_text(encoding="utf-8"))["dev_score"] >= dev_score:
        return  # an earlier seed of this job is at least as good on dev
    staging = best_dir.with_name(".staging-best_checkpoint")
    shutil.rmtree(staging, ignore_errors=True)
    if out_of_scope_detector is not None:
        model.config.out_of_scope_detector = out_of_scope_detector
    elif hasattr(model.config, "out_of_scope_detector"):  # a checkpoint trained further without out-of-scope data
        del model.config.out_of_scope_detector
    # safetensors + config (auto_map, custom_pipelines) + processor files + code files
    pipeline = MultimodalIntentRecognitionPipeline(model=model, processor=ctx.processor, device=model.device)
    pipeline.save_pretrained(staging)
    write_json(staging / "training_args.json", {**training_arguments(ctx.args, fusion, seed),
                                                "is_synthetic": ctx.data.is_synthetic, "dev_score": dev_score})
    if best_dir.exists():
        shutil.rmtree(best_dir)
    os.rename(staging, best_dir)


def write_reports(ctx: RunContext, runs: list[dict], job_start: float) -> dict:
    """results.json, results.md, plots, and the model card of each fusion's best checkpoint (main process)."""
    results = [run["result"] for run in runs]
    results_json = {"runs": results, "summary": summarize(results)}
    write_json(ctx.output_dir / "results.json", results_json)
    markdown = results_markdown(ctx.args, ctx.data, results, results_json["summary"])
    (ctx.output_dir / "results.md").write_text(markdown, encoding="utf-8")
    if not ctx.args.eval_only:
        write_model_cards(ctx, json.loads((ctx.output_dir / "results.json").read_text(encoding="utf-8")))
    plots = make_plots(ctx.args, ctx.data, ctx.processor, ctx.output_dir, runs)
    print("\n" + markdown)
    logger.info(f"Wrote {ctx.output_dir / 'results.json'}, results.md, plots ({', '.join(p.name for p in plots)}); "
                f"job time {time.time() - job_start:.0f} s")
    return results_json


def write_model_cards(ctx: RunContext, results_json: dict) -> None:
    """README.md of each fusion's best checkpoint, now that all results are known."""
    args = ctx.args
    base_model = PACKAGED_ENCODER_HUB_IDS.get(
        args.model_name_or_path, None if is_local_path(args.model_name_or_path) else args.model_name_or_path
    )
    for fusion in args.fusion:
        best_dir = ctx.output_dir / fusion / "best_checkpoint"
        card = render_model_card(
            best_dir, results=results_json, dataset_name=ctx.data.benchmark, synthetic=ctx.data.is_synthetic,
            dataset_id=ctx.data.hub_dataset_id, base_model=base_model,
            repo_id=args.hub_model_id if fusion == args.fusion[0] else None,
        )
        card.save(best_dir / "README.md")


def push_to_hub(ctx: RunContext) -> bool:
    """Uploads the first fusion's best checkpoint. On failure: says which step failed; the local folder stays whole."""
    folder = ctx.output_dir / ctx.args.fusion[0] / "best_checkpoint"
    try:
        commit = push_checkpoint(folder, ctx.args.hub_model_id, token=ctx.args.hub_token, private=ctx.args.hub_private_repo)
    except (HubUploadError, CheckpointError) as error:
        logger.error(f"Pushing {folder} to the Hub failed: {error}\nThe local checkpoint {folder} is complete; retry "
                     f"with `python -m dyken_hyena.publishing {folder} --hub_model_id {ctx.args.hub_model_id}`.")
        return False
    logger.info(f"Pushed {folder} to {commit.repo_url.url} (commit {commit.oid}).")
    return True


# ---------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------


def make_accelerator(args, output_dir: Path) -> Accelerator:
    mixed_precision = args.mixed_precision  # None: Accelerate's config file / `accelerate launch --mixed_precision`
    if mixed_precision == "auto":
        mixed_precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if torch.cuda.is_available() else "no"
    accelerator = Accelerator(
        gradient_accumulation_steps=args.gradient_accumulation_steps, mixed_precision=mixed_precision, cpu=args.cpu,
        log_with=make_trackers(args.with_tracking, args.report_to, output_dir / "logs"),
        project_dir=str(output_dir / "logs"),
    )
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S", level=logging.INFO)
    logging.getLogger("accelerate.checkpointing").setLevel(logging.WARNING)  # one INFO line per saved file otherwise
    logging.getLogger("accelerate.accelerator").setLevel(logging.WARNING)
    verbosity = logging.WARNING if accelerator.is_local_main_process else logging.ERROR
    datasets.utils.logging.set_verbosity(verbosity)
    transformers.utils.logging.set_verbosity(verbosity)
    return accelerator


def main(argv=None) -> int:
    args = parse_args(argv)
    output_dir = Path(args.output_dir).resolve()
    check_output_dir(args, output_dir)  # before the Accelerator exists: it is what first writes into the folder
    accelerator = make_accelerator(args, output_dir)
    logger.info(accelerator.state, main_process_only=False)
    job_start = time.time()
    plans = [] if args.eval_only else plan_runs(args, output_dir, accelerator.num_processes)

    with accelerator.main_process_first():  # the first process builds the Arrow cache, the others read it
        try:
            data = load_intent_data(args.dataset, args.data_dir, args.benchmark, args.open_set)
        except FileExistsError as error:  # --dataset synthetic --data_dir: a folder that is never written over
            raise JobSetupError(f"--dataset {args.dataset} --data_dir {args.data_dir}: {error}") from None
    if arguments.dyken_checkpoint_fusion(args.model_name_or_path) is not None:
        processor = DyKenProcessor.from_pretrained(args.model_name_or_path, padding=args.padding)
    else:
        tokenizer = AutoTokenizer.from_pretrained(resolve_text_model_path(args.model_name_or_path))
        processor = DyKenProcessor.for_benchmark(data.benchmark, tokenizer, padding=args.padding,
                                                 **release_feature_models(data))
    if args.overwrite_output_dir and accelerator.is_main_process:
        clear_earlier_job(args, output_dir)  # only now: a typo in the data options has removed nothing
    accelerator.wait_for_everyone()
    logger.info(f"Data: {data.benchmark} ({args.dataset}), {len(data.label_names)} intents"
                f"{', open set' if data.oos_label_id is not None else ''}; "
                + ", ".join(f"{name} {len(split)}" for name, split in data.splits.items()))
    if args.outlier_exposure_weight > 0 and "ood_train" not in data.splits:
        raise JobSetupError("--outlier_exposure_weight > 0 needs out-of-scope training data (MIntRec2.0's ood_train "
                            "split, loaded with --open_set).")
    ctx = RunContext(args, accelerator, data, processor, IntentEvaluator(accelerator, data.label_names, args.ood_detector),
                     output_dir, ProgressState())
    accelerator.register_for_checkpointing(ctx.progress_state)
    accelerator.init_trackers("dyken", config={k: v if isinstance(v, (int, float, str, bool)) else str(v)
                                               for k, v in vars(args).items() if k != "hub_token"})

    runs = [evaluate_checkpoint(ctx)] if args.eval_only else []
    for plan in plans:
        if plan.reuse_result is not None:
            logger.info(f"[{plan.fusion}/seed_{plan.seed}] already finished with the same options; reusing {plan.reuse_result}")
            runs.append(json.loads(plan.reuse_result.read_text(encoding="utf-8")))
        else:
            runs.append(train_run(ctx, plan.fusion, plan.seed, plan.resume_from))

    upload_ok = True
    if accelerator.is_main_process:
        write_reports(ctx, runs, job_start)
        if args.push_to_hub and not args.eval_only:
            upload_ok = push_to_hub(ctx)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return 0 if upload_ok else 1


def cli() -> int:
    """Entry point: a job that cannot start as asked, or whose training diverges before its first evaluation, says
    why in one message, without a traceback."""
    try:
        return main()
    except JobSetupError as error:
        print(f"train_accelerate.py: error: {error}", file=sys.stderr)
        return 2
    except TrainingDivergedError as error:
        print(f"train_accelerate.py: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(cli())
