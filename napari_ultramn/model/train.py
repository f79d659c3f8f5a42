"""Train UltraMN (or a baseline) on a dataset folder; CPU for small runs, CUDA with AMP, DDP via torchrun.

The main loop in :func:`train_run` is short and calls named steps of :class:`Trainer`
(``train_step``, ``validation_step``, ``save_checkpoint``). Design choices:

- AdamW with linear warm-up then cosine decay, stepped per optimizer step. The schedule's
  position is the larger of (steps done / steps planned for ``epochs``) and (share of
  ``max_minutes`` used), so a time-limited run still anneals to a low learning rate before it
  stops; without ``max_minutes`` the schedule is purely step-based and runs repeat exactly.
- Early stopping on the validation score = mean(nerve Dice, plane accuracy), with ``patience``
  epochs; ``best.pt`` holds the best score, ``last.pt`` the newest epoch (resume point).
- Resume is at epoch granularity: a killed run loses at most the epoch in progress. The loader's
  shuffle is reseeded from (seed, epoch) and the RNG states are restored, so a resumed run ends
  with the same weights as an unbroken one (tested). ``max_minutes`` counts the run's whole
  training time, earlier sessions included; ``max_steps`` counts this call's steps.
- Class-weighted frame-plane loss (``plane_class_weights="auto"``): the rare labels, above all
  ``non_standard`` (probe tilted out of plane, a few percent of frames), are what a short run gets
  wrong. The per-frame plane cross-entropy weights each label by its square-root inverse frequency
  among the *training* split's labelled frames, capped at 10x the commonest and normalised to mean
  1 (:func:`~napari_ultramn.model.losses.inverse_frequency_weights`, which says why not full
  inverse frequency). Computed from the training split only, never validation or test. The weights
  are stored in the checkpoint (``plane_class_weights``) and in ``args``; a resume uses the stored
  ones (a checkpoint from before weighting resumes unweighted), so one run has one loss.
- Batches travel as uint8 (the loader only reads and decompresses) and become float32 on the
  device (``loader.batch_to_float``): a quarter of the bytes through DataLoader workers' shared
  memory. Training batches are augmented there, batched (``augment.Augment``), from a generator on
  the device seeded per epoch from (seed, epoch, rank): with the loader's order reseeded per epoch
  too, a run and a resumed run see the same augmentations.
- DDP: under ``torchrun`` (``WORLD_SIZE`` > 1) each rank gets a DistributedSampler shard; rank 0
  alone validates, logs and writes checkpoints; stop decisions and the time-budget position are
  agreed with an all-reduce every step so no rank waits forever in a collective and all use the
  same learning rate.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_write_json
from ..errors import InputError
from ..metrics import dice_from_counts
from ..progress import Progress, ProgressGen
from ..vocabulary import MODEL_NAMES
from . import data
from .augment import Augment, epoch_generator
from .checkpoint import load_checkpoint, save_checkpoint
from .runlog import RUN_FILE, RunLog

MODELS = MODEL_NAMES
AUTO = "auto"


def resolve_plane_class_weights(requested, train_h5: Path, n_labels: int, ckpt: dict | None) -> list[float] | None:
    """The per-frame plane loss's class weights for a run (None = unweighted).

    ``requested``: ``"auto"`` (square-root inverse frequency over the training split's frames),
    None, or one weight per label. On resume (``ckpt`` given) the checkpoint's weights are used;
    an explicit request that differs from them is refused rather than silently changing the loss.
    """
    from .losses import inverse_frequency_weights, validate_class_weights

    auto = isinstance(requested, str)
    if auto and requested != AUTO:
        raise InputError(
            None, f"plane_class_weights must be '{AUTO}', None or one weight per plane label; got '{requested}'"
        )
    try:
        checked = None if auto or requested is None else validate_class_weights(requested)
        wanted = None if checked is None else list(checked)
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    if ckpt is not None:
        stored = ckpt.get("plane_class_weights")  # absent: trained before weighting existed
        if not auto and wanted != stored:
            raise InputError(
                ckpt["path"],
                f"was trained with plane_class_weights {stored}, not {wanted}; "
                f"resume with '{AUTO}' (the stored ones) or start a new run",
            )
        return stored
    return inverse_frequency_weights(data.plane_label_counts(train_h5, n_labels).tolist()) if auto else wanted


def pick_device(device: str = "auto"):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(None, "--device cuda asked for, but torch sees no CUDA device")
    if device.startswith("cuda") and device == "cuda" and "LOCAL_RANK" in os.environ:
        device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
    return torch.device(device)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    # the legacy global numpy RNG on purpose: third-party augmentations may draw from it
    np.random.seed(seed)  # noqa: NPY002
    torch.manual_seed(seed)


def rng_state() -> dict:
    import torch

    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def warmup_cosine(position: float, warmup: float = 0.05, floor: float = 0.02) -> float:
    """LR factor at ``position`` in [0, 1] of the training: linear warm-up, then cosine to ``floor``."""
    if position < warmup:
        return max(position / warmup, 0.01)
    t = min(1.0, (position - warmup) / (1.0 - warmup))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def build_optimizer(params, *, lr: float, weight_decay: float):
    """AdamW for ``params``, safe in a process that already holds an OpenGL context.

    Building a torch optimizer imports Triton where it is installed; after Mesa's OpenGL that
    crashes the process (see :mod:`.triton_guard`), so Triton is kept out first.
    """
    import torch

    from .triton_guard import keep_triton_out_after_gl

    keep_triton_out_after_gl()
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


class Budget:
    """Time and step limits. Time counts the run's whole training (earlier sessions included, so a
    resumed run gets what is left of ``max_minutes``); steps count this call only."""

    def __init__(self, max_minutes: float | None, max_steps: int | None, first_step: int, elapsed_before: float):
        self.max_s = None if max_minutes is None else max_minutes * 60.0
        self.max_minutes, self.max_steps, self.first_step = max_minutes, max_steps, first_step
        self.t0, self.before = time.monotonic(), elapsed_before

    def restart(self) -> Budget:
        """Start the clock now (after loading data and model), keeping the limits."""
        self.t0 = time.monotonic()
        return self

    def elapsed(self) -> float:
        return self.before + time.monotonic() - self.t0

    def fraction_used(self) -> float:
        """Share of the time budget used so far (0 without one)."""
        return 0.0 if not self.max_s else min(1.0, self.elapsed() / self.max_s)

    def exceeded(self, step: int) -> str | None:
        if self.max_s is not None and self.elapsed() > self.max_s:
            return f"time budget of {self.max_minutes} min reached"
        if self.max_steps is not None and step - self.first_step >= self.max_steps:
            return f"step limit of {self.max_steps} reached"
        return None


def check_frame_size(dataset_dir: Path, size: tuple[int, int], multiple: int) -> None:
    """Refuse, in one line naming the dataset and the sizes that work, frames the network cannot
    take: its U-Net halves them ``depth`` times, so height and width must be multiples of
    ``2**depth``. Refusing at the start (not padding inside the model) keeps a dataset's frames
    exactly what the model trains and is evaluated on."""
    if not any(s % multiple for s in size):
        return
    down = tuple(max(multiple, s // multiple * multiple) for s in size)
    up = tuple(-(-s // multiple) * multiple for s in size)
    sizes = " or ".join(dict.fromkeys(f"--size {h} {w}" for h, w in (down, up)))
    raise InputError(
        dataset_dir,
        f"frames of {size[0]}x{size[1]} px are not divisible by 2**depth = {multiple} "
        f"(the model halves them that often); rebuild the dataset with {sizes}, or give the "
        "model a smaller depth",
    )


class Trainer:
    """Model, optimizer, loaders and run state of one training run (one per DDP rank)."""

    def __init__(
        self,
        dataset_dir,
        run_dir,
        *,
        model,
        epochs,
        batch_size,
        window,
        lr,
        device,
        resume,
        seed,
        model_kwargs,
        loss_kwargs,
        patience,
        workers,
        weight_decay,
        max_minutes=None,
        max_steps=None,
        plane_class_weights=AUTO,
    ):
        import torch

        from . import network

        self.run_dir = Path(run_dir)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.is_main = self.rank == 0
        self.device = pick_device(device)
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        if model not in MODELS:
            raise InputError(None, f"unknown model '{model}'; expected one of {', '.join(MODELS)}")
        manifest = data.read_manifest(dataset_dir)
        self.plane_labels = data.plane_labels(manifest)
        train_h5 = data.split_path(dataset_dir, "train")
        val_h5 = data.split_path(dataset_dir, "validation")
        self.input_size = data.frame_size(train_h5)
        self.epochs, self.window, self.patience, self.seed = epochs, window, patience, seed
        self.args = {
            "dataset_dir": str(Path(dataset_dir).resolve()),
            "model": model,
            "epochs": epochs,
            "batch_size": batch_size,
            "window": window,
            "lr": lr,
            "seed": seed,
            "patience": patience,
            "model_kwargs": dict(model_kwargs or {}),
            "loss_kwargs": dict(loss_kwargs or {}),
            "weight_decay": weight_decay,
            "max_minutes": max_minutes,
            "world_size": self.world,
        }

        seed_everything(seed + self.rank)
        self.model = network.build_model(model, len(self.plane_labels), **(model_kwargs or {})).to(self.device)
        check_frame_size(Path(dataset_dir), self.input_size, 2 ** getattr(self.model, "depth", 0))
        self.net = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        ckpt = self.resume_point(resume)
        self.loss_fn = self.build_loss(loss_kwargs, plane_class_weights, train_h5, ckpt)
        if workers is None:
            workers = min(4, max(0, (os.cpu_count() or 1) - 1)) if self.device.type == "cuda" else 0
        train_set = data.make_window_dataset(train_h5, window, train=True)
        if len(train_set) == 0:
            raise InputError(train_h5, f"yields no training windows of {window} frames (clips too short?)")
        self.train_loader = data.make_loader(
            train_set, batch_size=batch_size, shuffle=True, seed=seed, workers=workers, distributed=self.world > 1
        )
        self.val_loader = data.make_loader(
            data.make_window_dataset(val_h5, window, train=False),
            batch_size=batch_size,
            shuffle=False,
            seed=seed,
            workers=workers,
        )
        self.total_steps = max(1, epochs * len(self.train_loader))
        self.augment = Augment()
        self.augment_generator = epoch_generator(seed, 0, self.rank, self.device)  # renewed by set_epoch
        self.augment_workspace: dict = {}  # the augmented batch's tensors, reused step after step
        self.optimizer = build_optimizer(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.budget = Budget(max_minutes, max_steps, 0, 0.0)
        self.time_fraction = 0.0  # share of the time budget used, agreed between DDP ranks
        # the schedule runs to the planned epochs or, with a time budget, to whichever ends first,
        # so "train for N minutes" still anneals the learning rate before it stops
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: warmup_cosine(max(step / self.total_steps, self.time_fraction))
        )
        self.use_amp = self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.epoch, self.step, self.best_score, self.best_epoch, self.stale = 0, 0, -1.0, -1, 0
        self.elapsed_before = 0.0
        if ckpt is not None:
            self.restore(ckpt)

    def resume_point(self, resume: bool) -> dict | None:
        """``last.pt`` when resuming (None otherwise); refuses to resume nothing or to clobber a run."""
        if resume and not (self.run_dir / "last.pt").is_file():
            raise InputError(self.run_dir, "has nothing to resume (no last.pt); start it without --resume")
        if not resume and (self.run_dir / "last.pt").exists():
            raise InputError(self.run_dir, "already holds a run; pass --resume to continue it or choose another --out")
        return load_checkpoint(self.run_dir, "last") if resume else None

    def build_loss(self, loss_kwargs: dict | None, plane_class_weights, train_h5: Path, ckpt: dict | None):
        """The MultitaskLoss of this run, its plane class weights resolved (and recorded in args)."""
        from .losses import MultitaskLoss

        if "plane_class_weights" in (loss_kwargs or {}):
            raise InputError(
                None,
                "give plane_class_weights to train_run itself, not in loss_kwargs "
                "(the trainer stores them in the checkpoint for resume)",
            )
        self.plane_class_weights = resolve_plane_class_weights(
            plane_class_weights, train_h5, len(self.plane_labels), ckpt
        )
        self.args["plane_class_weights"] = self.plane_class_weights
        return MultitaskLoss(**(loss_kwargs or {}), plane_class_weights=self.plane_class_weights).to(self.device)

    # -- state ---------------------------------------------------------------------------
    def state(self, metrics: dict, elapsed: float) -> dict:
        return {
            "model_config": dict(self.model.config),
            "model_state": self.model.state_dict(),
            "plane_labels": self.plane_labels,
            "input_size": list(self.input_size),
            "window": self.window,
            "epoch": self.epoch,
            "step": self.step,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng_state(),
            "metrics": metrics,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "stale": self.stale,
            "elapsed_s": elapsed,
            "args": self.args,
            "plane_class_weights": self.plane_class_weights,
        }

    def restore(self, ckpt: dict) -> None:
        if ckpt["plane_labels"] != self.plane_labels:
            raise InputError(
                ckpt["path"], f"vocabulary {ckpt['plane_labels']} differs from the dataset's {self.plane_labels}"
            )
        self.model.load_state_dict(ckpt["model_state"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.scaler.load_state_dict(ckpt["scaler"])
        set_rng_state(ckpt["rng"])
        self.epoch, self.step = ckpt["epoch"] + 1, ckpt["step"]
        self.best_score, self.best_epoch = ckpt["best_score"], ckpt["best_epoch"]
        self.stale, self.elapsed_before = ckpt.get("stale", 0), ckpt.get("elapsed_s", 0.0)
        self.budget = Budget(self.budget.max_minutes, self.budget.max_steps, self.step, self.elapsed_before)
        self.time_fraction = self.budget.fraction_used()

    def to_device(self, batch: dict, augment: bool = False) -> dict:
        """Tensors onto the device; uint8 frames and masks become float32 there, augmented first
        when ``augment`` (training batches)."""
        from .loader import batch_to_float

        if augment:
            return batch_to_float(
                batch, self.device, self.augment, self.augment_generator, workspace=self.augment_workspace
            )
        return batch_to_float(batch, self.device)

    # -- named steps ---------------------------------------------------------------------
    def train_step(self, batch: dict) -> dict:
        """One optimizer step; returns the loss parts as floats."""
        import torch

        self.net.train()
        batch = self.to_device(batch, augment=True)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            outputs = self.net(batch["frames"])
            total, parts = self.loss_fn(outputs, batch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)  # early-epoch Dice spikes
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.step += 1
        return {"loss": float(total.detach()), **{k: float(v) for k, v in parts.items()}}

    def train_epoch(self, log: RunLog, budget: Budget, log_every: int):
        """One pass over the training windows (stops early at a budget limit).

        Yields step progress; returns ``(last losses, limit message or None)``.
        """
        self.set_epoch(self.epoch)
        losses, limit = {}, None
        for batch in self.train_loader:
            losses = self.train_step(batch)
            if self.step % log_every == 0:
                lr = self.scheduler.get_last_lr()[0]
                log.write("step", epoch=self.epoch, step=self.step, losses=losses, lr=lr, elapsed_s=budget.elapsed())
                yield Progress(
                    self.step,
                    self.total_steps,
                    f"epoch {self.epoch + 1}/{self.epochs} loss {losses['loss']:.3f}",
                    {"losses": losses},
                )
            limit = budget.exceeded(self.step)
            # under DDP every rank must leave the loop at the same step (or a collective hangs) and
            # use the same learning rate (or the replicas drift apart): agree on both
            stop, self.time_fraction = self.agree(float(limit is not None), budget.fraction_used())
            if stop:
                return losses, limit or "time budget reached on another rank"
        return losses, None

    def validation_step(self) -> dict:
        """Validation loss, per-frame nerve Dice (annotated frames) and plane accuracy."""
        import torch

        self.model.eval()
        loss_sum, n_batches, dice_sum, n_dice, correct, n_plane = 0.0, 0, 0.0, 0, 0, 0
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            for batch in self.val_loader:
                batch = self.to_device(batch)
                out = self.model(batch["frames"])
                total, _ = self.loss_fn(out, batch)
                loss_sum, n_batches = loss_sum + float(total), n_batches + 1
                pred = (out["seg"].float() > 0)[:, 0] & (out["presence"].float() > 0)[..., None, None]
                gt = batch["masks"][:, 0] > 0.5
                inter = (pred & gt).flatten(2).sum(-1).float()
                size = pred.flatten(2).sum(-1).float() + gt.flatten(2).sum(-1).float()
                frame_dice = dice_from_counts(inter, size)  # the one empty-mask convention (metrics.py)
                ann = batch["annotated"].bool()
                dice_sum, n_dice = dice_sum + float(frame_dice[ann].sum()), n_dice + int(ann.sum())
                known = batch["plane"] >= 0
                hits = out["plane_frame"].argmax(-1) == batch["plane"]
                correct, n_plane = correct + int((hits & known).sum()), n_plane + int(known.sum())
        dice = dice_sum / n_dice if n_dice else float("nan")
        acc = correct / n_plane if n_plane else float("nan")
        score = float(np.nanmean([dice, acc])) if n_dice or n_plane else 0.0
        return {"val_loss": loss_sum / max(1, n_batches), "val_dice": dice, "val_plane_acc": acc, "score": score}

    def save_checkpoint(self, metrics: dict, elapsed: float, improved: bool) -> None:
        state = self.state(metrics, elapsed)
        save_checkpoint(self.run_dir / "last.pt", state)
        if improved:
            save_checkpoint(self.run_dir / "best.pt", state)

    def update_best(self, metrics: dict) -> bool:
        improved = metrics["score"] > self.best_score + 1e-4
        if improved:
            self.best_score, self.best_epoch, self.stale = metrics["score"], self.epoch, 0
        else:
            self.stale += 1
        return improved

    def agree(self, *values: float) -> list[float]:
        """Under DDP, the maximum of each value over all ranks (so all ranks decide alike)."""
        if self.world == 1:
            return [float(v) for v in values]
        import torch

        t = torch.tensor([float(v) for v in values], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return t.tolist()

    def set_epoch(self, epoch: int) -> None:
        # a new augmentation stream each epoch, the same one again when a run resumes here
        self.augment_generator = epoch_generator(self.seed, epoch, self.rank, self.device)
        sampler = self.train_loader.sampler
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        if self.train_loader.generator is not None:
            self.train_loader.generator.manual_seed(self.seed * 100_003 + epoch)

    def close(self) -> None:
        import torch

        if self.world > 1 and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def train_run(
    dataset_dir,
    run_dir,
    *,
    model: str = "ultramn",
    epochs: int = 20,
    batch_size: int = 4,
    window: int = 16,
    lr: float = 2e-3,
    max_minutes: float | None = None,
    device: str = "auto",
    resume: bool = False,
    seed: int = 0,
    model_kwargs: dict | None = None,
    loss_kwargs: dict | None = None,
    patience: int = 5,
    log_every: int = 10,
    workers: int | None = None,
    weight_decay: float = 1e-4,
    max_steps: int | None = None,
    plane_class_weights: str | Sequence[float] | None = AUTO,
) -> ProgressGen[dict]:
    """Train on ``dataset_dir`` into ``run_dir``; yields Progress, returns a summary dict.

    Summary keys: run_dir, best_score, best_epoch, epochs_done, steps, stop_reason, elapsed_s, metrics
    (the last validation metrics), plane_class_weights (those used; see the module docstring for
    ``plane_class_weights="auto"``; None trains unweighted, a list sets one weight per plane label). ``max_steps`` caps the optimizer steps of this call (quick demos,
    smoke tests), like ``max_minutes`` caps its time. Closing the generator (Cancel) leaves ``last.pt`` of the last
    finished epoch, so ``resume=True`` continues.
    """
    tr = Trainer(
        dataset_dir,
        run_dir,
        model=model,
        epochs=epochs,
        batch_size=batch_size,
        window=window,
        lr=lr,
        device=device,
        resume=resume,
        seed=seed,
        model_kwargs=model_kwargs,
        loss_kwargs=loss_kwargs,
        patience=patience,
        workers=workers,
        weight_decay=weight_decay,
        max_minutes=max_minutes,
        max_steps=max_steps,
        plane_class_weights=plane_class_weights,
    )
    log = RunLog(run_dir, enabled=tr.is_main)
    if tr.is_main:
        atomic_write_json(
            tr.run_dir / RUN_FILE,
            {
                "args": tr.args,
                "plane_labels": tr.plane_labels,
                "input_size": list(tr.input_size),
                "model_config": tr.model.config,
                "device": str(tr.device),
            },
        )
    log.write("start", epoch=tr.epoch, step=tr.step, total_steps=tr.total_steps, resumed=resume, device=str(tr.device))
    budget = tr.budget.restart()
    reason, metrics = "epochs done", dict[str, float]()
    try:
        while tr.epoch < epochs:
            losses, limit = yield from tr.train_epoch(log, budget, log_every)
            metrics = tr.validation_step() if tr.is_main else {"score": 0.0}
            improved = tr.update_best(metrics) if tr.is_main else False
            if tr.is_main:
                tr.save_checkpoint(metrics, budget.elapsed(), improved)
            log.write(
                "epoch",
                epoch=tr.epoch,
                step=tr.step,
                losses=losses,
                metrics=metrics,
                best=improved,
                elapsed_s=budget.elapsed(),
            )
            yield Progress(
                tr.step,
                tr.total_steps,
                f"epoch {tr.epoch + 1}/{epochs} val Dice {metrics.get('val_dice', float('nan')):.3f}",
                {"epoch": tr.epoch, "losses": losses, **metrics},
            )
            tr.epoch += 1
            if tr.agree(tr.is_main and tr.stale >= patience)[0]:
                reason = f"early stop (no better validation score for {patience} epochs)"
            elif limit:
                reason = limit
            if reason != "epochs done":
                break
        log.write(
            "end",
            reason=reason,
            epoch=tr.epoch - 1,
            step=tr.step,
            best_score=tr.best_score,
            best_epoch=tr.best_epoch,
            elapsed_s=budget.elapsed(),
        )
    finally:
        log.close()
        tr.close()
    return {
        "run_dir": str(tr.run_dir),
        "best_score": tr.best_score,
        "best_epoch": tr.best_epoch,
        "epochs_done": tr.epoch,
        "steps": tr.step,
        "stop_reason": reason,
        "elapsed_s": budget.elapsed(),
        "metrics": metrics,
        "plane_class_weights": tr.plane_class_weights,
    }
