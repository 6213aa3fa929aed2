"""Training of the feed-forward networks (Johnson et al. 2016, Sec. 4): style transfer and super-resolution.

``train_style`` and ``train_superres`` check every file before any work, build the task (loss
network first, so that missing weights fail before minutes of decoding), run the loop, and write
the model file with its catalog entry beside it (``OUT.json``), quality measured last.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import torch

from livestyle.engines.device import device_label, resolve_device
from livestyle.errors import InputError, OutputError, TrainingError
from livestyle.files import atomic_output, check_output_path, is_within, write_json
from livestyle.io.images import read_image
from livestyle.models.convention import image_to_batch
from livestyle.quality.objective import build_objective
from livestyle.quality.style_eval import style_quality
from livestyle.quality.superres_eval import dataset_images, evaluate_superres
from livestyle.training.checkpoints import load_initial_weights
from livestyle.training.data import ImageBank, decode_images
from livestyle.training.distributed import barrier, ranks, start as start_distributed, stop as stop_distributed
from livestyle.training.loop import TrainingLoop, TrainingResult
from livestyle.training.recipes import (RunOptions, StyleRecipe, SuperResRecipe, style_objective_config,
                                        superres_objective_config)
from livestyle.training.tasks import StyleTask, SuperResTask, Task, center_crop
from livestyle.zoo.modelfile import save_model_file
from livestyle.zoo.provenance import dataset_note


def check_run_files(output: str | os.PathLike, options: RunOptions, inputs: list[str | os.PathLike | None],
                    dataset: str | os.PathLike | None = None) -> Path:
    """Before any work: the model, its entry (OUT.json), the checkpoint and the preview folder can be
    written and overwrite neither an input nor each other; previews do not go into ``dataset`` (where
    a later run, or a resume, would train on them)."""
    output = Path(output)
    if output.suffix != ".safetensors":
        raise OutputError(f"{output}: a model file must end in .safetensors (its entry goes beside it as .json)")
    entry = output.with_suffix(".json")
    for path in (output, entry):
        check_output_path(path, *inputs)
    if options.checkpoint:
        checkpoint = Path(options.checkpoint)
        if checkpoint.resolve() in (output.resolve(), entry.resolve()):
            raise OutputError(f"checkpoint {checkpoint} would overwrite the model or its entry; choose another name")
        check_output_path(checkpoint, *inputs)
    if options.preview_dir and options.preview_every:
        folder = Path(options.preview_dir)
        if dataset is not None and Path(dataset).is_dir() and is_within(folder, dataset):
            raise OutputError(f"preview folder {folder} is inside the training photos {dataset}, which would then "
                              "hold the previews; choose --preview-dir (or -o) elsewhere")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create preview folder {folder}: {exc.strerror}") from exc
        if not os.access(folder, os.W_OK):
            raise OutputError(f"preview folder {folder} is not writable")
    return output


def _check_learning_rate(lr: float) -> None:
    if not (math.isfinite(lr) and lr >= 0):
        raise TrainingError(f"the learning rate must be a finite number ≥ 0, got {lr}")


def _prepare_device(options: RunOptions, seed: int) -> torch.device:
    """The run's device, seeded for the network's initial weights, with cuDNN autotuning and TF32 on CUDA;
    where torchrun started several processes, this one's (after joining their process group)."""
    device = start_distributed(resolve_device(options.device))
    torch.manual_seed(seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def _load_bank(dataset: str, device: torch.device, *, short_side: int | None, min_side: int | None,
               limit: int | None, workers: int | None) -> tuple[ImageBank, dict]:
    decoded = decode_images(dataset, short_side=short_side, min_side=min_side, limit=limit, workers=workers)
    bank = ImageBank(decoded, device)
    return bank, {"images": len(decoded), "skipped": decoded.skipped, "enlarged": decoded.enlarged}


def train_style(recipe: StyleRecipe, output: str | os.PathLike, options: RunOptions = RunOptions(), *,
                name: str | None = None, variant: str = "full", quality_images: list[str] | None = None,
                gatys_iterations: tuple[int, ...] = (), init: str | None = None, on_log=None) -> TrainingResult:
    """Train a style network per ``recipe``; write ``output`` (safetensors) and ``output``.json (its entry).

    ``init``: a model file of the same architecture to start from (``load_initial_weights``).
    ``quality_images``: content photos to measure the objective on, beside Gatys after ``gatys_iterations``.
    """
    output = check_run_files(output, options, [recipe.style_image, recipe.dataset, init, recipe.loss_net_weights,
                                               *(quality_images or ())], dataset=recipe.dataset)
    _check_learning_rate(recipe.lr)
    if not Path(recipe.style_image).is_file():
        raise InputError(f"style image not found: {recipe.style_image}")
    for path in quality_images or ():  # read now: a bad photo should fail before training, not after
        read_image(path)
    device = _prepare_device(options, recipe.seed)
    style = image_to_batch(read_image(recipe.style_image).rgb, device)
    objective = build_objective(style_objective_config(recipe), style, weights=recipe.loss_net_weights, device=device)
    if recipe.image_size < objective.lossnet.min_side:
        raise TrainingError(f"--image-size {recipe.image_size} is below the {objective.lossnet.min_side} px "
                            "the loss network's taps need")
    bank, data_info = _load_bank(recipe.dataset, device, short_side=recipe.image_size, min_side=None,
                                 limit=recipe.data_limit, workers=options.workers)
    task = StyleTask(recipe, objective, bank, device, center_crop(bank, recipe.image_size, device))
    recipe_dict = recipe.to_dict()
    recipe_dict["objective"] = task.config.to_dict()
    result, entry = _train(task, recipe_dict, output, options, device, data_info, name=name, variant=variant,
                           init=init, on_log=on_log)
    if quality_images and entry is not None:  # after the model is on disk: this can take minutes (Gatys)
        entry["quality"] = style_quality(result.model, task.objective, quality_images, device, gatys_iterations)
        write_json(output.with_suffix(".json"), entry)
    result.entry = entry
    return result


def train_superres(recipe: SuperResRecipe, output: str | os.PathLike, options: RunOptions = RunOptions(), *,
                   name: str | None = None, variant: str = "full", quality_sets: dict[str, str] | None = None,
                   init: str | None = None, on_log=None) -> TrainingResult:
    """Train an SR network per ``recipe``; write ``output`` (safetensors) and ``output``.json (its entry).

    ``variant``: the entry's; "small" makes it the ×N model that ``--superres N`` runs on a CPU.
    ``init``: a model file of the same architecture to start from (``load_initial_weights``).
    ``quality_sets``: name → folder of HR images, scored (PSNR/SSIM beside bicubic) into the entry.
    """
    recipe = recipe.resolved()
    output = check_run_files(output, options, [recipe.dataset, init, recipe.loss_net_weights], dataset=recipe.dataset)
    _check_learning_rate(recipe.lr)
    for set_name, folder in (quality_sets or {}).items():  # checked now: a bad folder should fail before training
        dataset_images(folder)
        if Path(recipe.dataset).is_dir() and is_within(folder, recipe.dataset):
            warnings.warn(f"eval set {set_name} ({folder}) is among the training photos: its scores measure how "
                          "well the model fits them, not how it does on new images")
    device = _prepare_device(options, recipe.seed)
    config = superres_objective_config(recipe)
    objective = None if config is None else build_objective(config, weights=recipe.loss_net_weights, device=device)
    bank, data_info = _load_bank(recipe.dataset, device, short_side=None, min_side=recipe.patch_size,
                                 limit=recipe.data_limit, workers=options.workers)
    if data_info["enlarged"]:
        warnings.warn(f"{data_info['enlarged']} of {data_info['images']} photos are smaller than the "
                      f"{recipe.patch_size}² patches and were enlarged, so their HR targets are blurry; "
                      "a smaller --patch-size avoids it")
    task = SuperResTask(recipe, objective, bank, device, center_crop(bank, recipe.patch_size, device))
    result, entry = _train(task, recipe.to_dict(), output, options, device, data_info, name=name, variant=variant,
                           init=init, on_log=on_log)
    if quality_sets and entry is not None:  # after the model is on disk
        entry["quality"] = evaluate_superres(result.model, quality_sets, device=device)
        write_json(output.with_suffix(".json"), entry)
    result.entry = entry
    return result


def _train(task: Task, recipe: dict, output: Path, options: RunOptions, device: torch.device, data_info: dict, *,
           name: str | None, variant: str, init: str | None, on_log) -> tuple[TrainingResult, dict | None]:
    """Run the loop on ``task``, then write the model and its entry (quality not measured yet). Of
    several training processes (torchrun), rank 0 writes them; the others return no entry."""
    if init:
        recipe["init"] = load_initial_weights(task.model, init)
    loop = TrainingLoop(task, recipe, iterations=recipe["iterations"], lr=recipe["lr"], seed=recipe["seed"],
                        device=device, options=options, data_info=data_info, on_log=on_log)
    try:
        result = loop.run()
        if ranks().is_main:
            entry = _write_model(task, recipe, output, result, device, name=name, variant=variant)
        else:
            entry = None
        barrier(ranks())  # the others end once the model is on disk
    finally:
        stop_distributed()
    return result, entry


def _write_model(task: Task, recipe: dict, output: Path, result: TrainingResult, device: torch.device, *,
                 name: str | None, variant: str) -> dict:
    """Write the trained model and its catalog entry (``OUT.json``); returns the entry."""
    name = name or output.stem
    model = result.model.to(memory_format=torch.contiguous_format)
    with atomic_output(output) as tmp:
        sha = save_model_file(model, tmp, **{"livestyle.name": name})
    words = task.describe(recipe["dataset"])
    trained_on = device_label(device) + (f", {torch.get_num_threads()} threads" if device.type == "cpu" else "")
    if ranks().active:
        trained_on += f"; {ranks().world_size} processes (DistributedDataParallel)"
    recipe = {k: v for k, v in recipe.items() if k != "loss_net_weights"}  # a local path; its sha256 is kept
    recipe = {**recipe, **words["recipe"],
              "dataset": {"source": Path(recipe["dataset"]).name, "images": result.dataset_images,
                          "skipped": len(result.skipped_images), "note": dataset_note(recipe["dataset"])},
              "trained_on": trained_on, "steps": result.steps, "amp": result.amp,
              "channels_last": result.channels_last, "images_per_second": round(result.images_per_second, 2),
              "train_seconds": round(result.seconds, 1), "final_losses": result.final_losses, **(result.entry or {})}
    entry = {"name": name, "task": task.name, "arch": result.model.config.to_dict(), "file": output.name,
             "sha256": sha, "variant": variant, "description": words["description"], "recipe": recipe,
             "quality": {}, "credit": words["credit"], "licence": words["licence"]}
    write_json(output.with_suffix(".json"), entry)
    return entry
