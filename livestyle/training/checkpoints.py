"""Training checkpoints and starting points: save, load and check that a resume continues the same run.

Checkpoints are ``torch.save`` files of plain tensors, numbers and strings, read back with
``weights_only=True`` (never a pickle of objects).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from livestyle.errors import TrainingError
from livestyle.files import atomic_output, sha256_of
from livestyle.zoo.modelfile import load_model_file

CHECKPOINT_FORMAT = "livestyle-train-checkpoint/1"

def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write a checkpoint atomically (plain tensors, numbers, strings: loadable with weights_only=True)."""
    with atomic_output(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (weights_only: no objects are unpickled)."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"cannot resume: checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or not a torch file
        raise TrainingError(f"cannot resume from {path}: not a readable checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"cannot resume from {path}: not a livestyle training checkpoint")
    return state


def recipe_identity(recipe: dict) -> dict:
    """The recipe fields that must match for a resume to continue the same run: iterations may grow,
    the inference margin does not change training, the checkpoint replaces --init's weights, and a
    path is the same however it is spelled (``./photos/`` or absolute)."""
    same = {k: v for k, v in recipe.items() if k not in ("iterations", "margin", "init")}
    for key in ("dataset", "style_image", "loss_net_weights"):
        if isinstance(same.get(key), str):
            same[key] = os.path.realpath(same[key])
    return same


def load_initial_weights(model: nn.Module, path: str | os.PathLike) -> dict:
    """Start ``model`` from a trained model file of the same architecture (``--init``: fine-tuning a model,
    or continuing one whose checkpoint is gone; Adam starts afresh). Returns the recipe's record of the file."""
    source, _ = load_model_file(path)

    def architecture(net: nn.Module) -> dict | None:
        config = getattr(net, "config", None)  # the margin is not a weight: it may differ
        return {k: v for k, v in config.to_dict().items() if k != "margin"} if config is not None else None

    if type(source) is not type(model) or architecture(source) != architecture(model):
        raise TrainingError(f"--init {path}: its network ({type(source).__name__} {architecture(source)}) is not "
                            f"the one this run trains ({type(model).__name__} {architecture(model)}); "
                            "give the same architecture options")
    model.load_state_dict(source.state_dict())
    return {"file": Path(path).name, "sha256": sha256_of(path)}


def check_same_run(state: dict, path: str | os.PathLike, task_name: str, recipe: dict, photos: int,
                   iterations: int) -> None:
    """A checkpoint may be resumed only by the run it belongs to: same task, same recipe (see
    ``recipe_identity``), as many training photos, and no more steps done than asked for."""
    before, now = recipe_identity(json.loads(state["recipe"])), recipe_identity(recipe)
    if state["task"] != task_name or before != now:
        differ = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        raise TrainingError(f"cannot resume from {path}: it belongs to another run "
                            f"(differs in {', '.join(differ) or 'task'})")
    if int(state["step"]) > iterations:
        raise TrainingError(f"checkpoint is at step {int(state['step'])}, beyond the {iterations} iterations asked for")
    then = int(state.get("photos", 0))
    if then and photos != then:  # the batches would differ from the run's own: not the same run any more
        raise TrainingError(f"cannot resume from {path}: the training photos changed ({then} then, {photos} now)")
