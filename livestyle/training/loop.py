"""The training loop: Adam on any ``Task`` for a number of steps, cut into resume, step, log and
checkpoint, with previews, progress (``livestyle.io.progress``), a time limit and a clean stop on Ctrl-C or SIGTERM."""
from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from livestyle.engines.device import synchronize
from livestyle.errors import TrainingError
from livestyle.io.progress import Progress
from livestyle.training.checkpoints import CHECKPOINT_FORMAT, check_same_run, load_checkpoint, save_checkpoint
from livestyle.training.distributed import any_rank, check_batch, from_main, mean_over_ranks, ranks, shard, wrap
from livestyle.training.precision import Precision, choose_precision_and_layout
from livestyle.training.recipes import RunOptions
from livestyle.training.signals import StopBetweenSteps, TrainingInterrupted


@dataclass
class TrainingResult:
    """What a finished (or stopped) run gives: the model, its file, entry and measurements."""

    model: nn.Module
    steps: int
    final_losses: dict[str, float]
    images_per_second: float
    seconds: float
    amp: str
    channels_last: bool
    history: dict[str, list[float]] = field(default_factory=dict)
    skipped_images: list[str] = field(default_factory=list)
    dataset_images: int = 0
    entry: dict | None = None
    rank: int = 0  # of the training processes (torchrun); rank 0 writes the files


class TrainingLoop:
    """Adam on ``task`` for ``iterations`` steps; ``run()`` returns a ``TrainingResult``.

    ``recipe`` (a JSON-ready dict) identifies the run in its checkpoints, so that ``--resume``
    continues only the same run, bit for bit on the CPU. ``data_info``: the training photos' count
    and skipped files. ``on_log(step, values)`` sees every logged step.
    Started by torchrun, each process trains on its slice of every batch (``training.distributed``).
    """

    def __init__(self, task, recipe: dict, *, iterations: int, lr: float, seed: int, device: torch.device,
                 options: RunOptions, data_info: dict,
                 on_log: Callable[[int, dict[str, float]], None] | None = None):
        self.task, self.recipe, self.iterations, self.device = task, recipe, iterations, device
        self.data_info, self.on_log = data_info, on_log
        self.ranks = ranks()
        check_batch(task.batch_size, self.ranks)
        state = self.resume_state(options)
        if state is not None and state.get("device_type") == device.type:
            # On the same kind of device, "auto" keeps the run's own choices.
            saved_layout = "on" if state["channels_last"] else "off"
            options = replace(options, amp=state["amp"] if options.amp == "auto" else options.amp,
                              channels_last=saved_layout if options.channels_last == "auto" else options.channels_last)
        self.options = options
        chosen = choose_precision_and_layout(task, options, device) if self.ranks.is_main else None
        self.amp, self.channels_last, self.layout_timings = from_main(chosen, self.ranks)  # timed once, on rank 0
        task.set_layout(self.channels_last)
        self.precision = Precision(self.amp, device)
        self.optimizer = torch.optim.Adam(task.model.parameters(), lr=lr)
        self.generator = torch.Generator().manual_seed(seed)
        self.history: dict[str, list[float]] = {"step": []}
        self.start_step, self.seconds_before, self.images_before = 0, 0.0, 0
        if state is not None:
            self.restore(state)
        if self.ranks.active:  # after the restore: DDP starts every rank from rank 0's weights
            task.trainer = wrap(task.model, device)
        self._pending: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] = []
        self._window_start, self._window_images = 0.0, 0

    # --- resume -----------------------------------------------------------------------------------
    def resume_state(self, options: RunOptions) -> dict | None:
        """The checkpoint to continue (``options.resume``), checked to belong to this run; else None."""
        if not options.resume:
            return None
        if not options.checkpoint:
            raise TrainingError("--resume needs a checkpoint file (--checkpoint)")
        state = load_checkpoint(options.checkpoint)
        check_same_run(state, options.checkpoint, self.task.name, self.recipe, int(self.data_info.get("images", 0)),
                       self.iterations)
        return state

    def restore(self, state: dict) -> None:
        """Model, optimizer, data order, gradient scaler and history as the checkpoint left them."""
        self.task.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        if self.precision.scaler is not None and state.get("scaler"):
            self.precision.scaler.load_state_dict(state["scaler"])
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.start_step, self.seconds_before = int(state["step"]), float(state["seconds"])
        self.images_before = int(state["images"])

    # --- one step ---------------------------------------------------------------------------------
    def step(self) -> None:
        """One optimisation step; the loss terms are kept as tensors until the next log."""
        # Every rank draws the same global batch and trains on its slice: the data order is N's own.
        batch = shard(self.task.batch(self.generator), self.ranks)
        total, terms = self.task.optimize(batch, self.optimizer, self.precision)
        self._window_images += self.task.batch_size  # the global batch: the images of all ranks together
        # Reading a loss waits for a GPU, so the terms are read only when logged.
        self._pending.append((total, terms))

    # --- log --------------------------------------------------------------------------------------
    def log(self, step: int, bar) -> None:
        """Average the terms since the last log into the history and the progress bar."""
        keys = ["total", *self._pending[0][1]]
        means = [torch.stack([t for t, _ in self._pending]).float().mean()]
        means += [torch.stack([d[key].float() for _, d in self._pending]).mean() for key in keys[1:]]
        # Each rank's loss is on its slice; their mean is the loss on the whole batch.
        values = dict(zip(keys, mean_over_ranks(torch.stack(means), self.ranks).tolist()))
        self._pending.clear()
        if not math.isfinite(values["total"]):
            raise TrainingError(f"loss became {values['total']} by step {step}; lower --lr or the loss weights")
        now = time.perf_counter()
        rate = self._window_images / max(now - self._window_start, 1e-9)
        self._window_start, self._window_images = now, 0
        self.history["step"].append(step)
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)
        bar.set_postfix(", ".join([*(f"{k} {v:.4g}" for k, v in values.items()), f"{rate:.1f} img/s"]))
        if self.on_log is not None:
            self.on_log(step, {**values, "images_per_second": rate})

    # --- checkpoint -------------------------------------------------------------------------------
    def checkpoint(self, step: int, seconds: float) -> None:
        """Write the run's whole state to ``options.checkpoint`` (atomically; rank 0 only: the ranks agree)."""
        if not self.ranks.is_main:
            return
        save_checkpoint(self.options.checkpoint, {
            "format": CHECKPOINT_FORMAT, "task": self.task.name, "recipe": json.dumps(self.recipe, sort_keys=True),
            "step": step, "seconds": seconds,
            "images": self.images_before + (step - self.start_step) * self.task.batch_size,
            "photos": self.data_info.get("images", 0), "device_type": self.device.type, "amp": self.amp,
            "channels_last": self.channels_last,
            "model": {k: v.detach().cpu() for k, v in self.task.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
            "scaler": self.precision.scaler.state_dict() if self.precision.scaler is not None else {},
            "history": self.history,
        })

    def preview(self, step: int) -> None:
        from livestyle.io.images import Image, write_image

        if not self.ranks.is_main:
            return
        self.task.model.eval()  # as at inference: batch norms use (and do not update) their running statistics
        rgb = self.task.preview().astype(np.float32)
        write_image(Path(self.options.preview_dir) / f"{self.task.name}_{step:07d}.png", Image(rgb))
        self.task.model.train()

    # --- the run ----------------------------------------------------------------------------------
    def run(self) -> TrainingResult:
        options, iterations = self.options, self.iterations
        if options.preview_dir and options.preview_every:
            try:
                Path(options.preview_dir).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise TrainingError(f"cannot create preview folder {options.preview_dir}: {exc.strerror}") from exc
        self.task.model.train()
        bar = Progress(iterations, initial=self.start_step, enabled=options.progress and self.ranks.is_main,
                       unit="it", desc=f"train {self.task.name}")
        synchronize(self.device)
        run_start = self._window_start = time.perf_counter()
        step = self.start_step
        stop = StopBetweenSteps()
        try:
            stop.install()
            for step in range(self.start_step + 1, iterations + 1):
                self.step()
                out_of_time = options.time_limit_s is not None and time.perf_counter() - run_start > options.time_limit_s
                stopping = stop.requested is not None
                if self.ranks.active:  # all ranks stop at the same step, or the others would wait forever
                    out_of_time, stopping = any_rank([out_of_time, stopping], self.ranks, self.device)
                    if stopping:
                        stop.requested = stop.requested or signal.SIGINT
                if step % options.log_every == 0 or step == iterations or out_of_time:
                    self.log(step, bar)
                bar.update(1)
                if options.preview_dir and options.preview_every and step % options.preview_every == 0:
                    self.preview(step)
                if out_of_time or stopping or (stop.requested and not self.ranks.active):  # one process: at once
                    break
                if options.checkpoint and options.checkpoint_every and step % options.checkpoint_every == 0 \
                        and step != iterations:
                    synchronize(self.device)
                    self.checkpoint(step, self.seconds_before + time.perf_counter() - run_start)
        finally:
            stop.uninstall()
            bar.close()
        synchronize(self.device)
        seconds = time.perf_counter() - run_start
        if options.checkpoint:
            self.checkpoint(step, self.seconds_before + seconds)
        if stop.requested:
            kept = (f"checkpoint at step {step} in {options.checkpoint}; --resume continues" if options.checkpoint
                    else "no checkpoint was asked for (--checkpoint FILE keeps a run's progress)")
            raise TrainingInterrupted(f"stopped after step {step} of {iterations}; {kept}", stop.requested)
        return self.result(step, seconds)

    def result(self, step: int, seconds: float) -> TrainingResult:
        tail = {k: v[-10:] for k, v in self.history.items() if k != "step"}
        final = {k: float(np.mean(v)) for k, v in tail.items() if v}
        extra = {"layout_timings_ms": self.layout_timings} if self.layout_timings else {}
        if step < self.iterations:
            extra["stopped_at_time_limit"] = True
        images = (step - self.start_step) * self.task.batch_size
        return TrainingResult(self.task.model.eval(), step, final, images / max(seconds, 1e-9),
                              self.seconds_before + seconds, self.amp, self.channels_last, self.history,
                              self.data_info.get("skipped", []), self.data_info.get("images", 0), entry=extra or None,
                              rank=self.ranks.rank)

