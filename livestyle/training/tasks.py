"""Training tasks, in the manner of BasicSR's ``models/sr_model.py``: each owns its network, data,
loss and optimisation step, its preview, and what its catalog entry says. The loop
(``livestyle.training.loop``) drives any task and knows nothing of styles or super-resolution."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from livestyle.files import sha256_of
from livestyle.models.convention import batch_to_image
from livestyle.models.transform import transform_net
from livestyle.quality.losses import pixel_loss, total_variation_loss
from livestyle.quality.objective import PerceptualObjective
from livestyle.quality.superres_eval import make_low_resolution
from livestyle.training.data import ImageBank, StyleData, SuperResData
from livestyle.training.precision import Precision
from livestyle.training.recipes import StyleRecipe, SuperResRecipe, style_objective_config
from livestyle.zoo.provenance import STYLE_IMAGE_LICENCE, dataset_note, style_credit
from livestyle.zoo.registry import build_model


def _to_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def center_crop(bank: ImageBank, size: int, device: torch.device) -> torch.Tensor:
    """A fixed preview: the centre ``size``² crop of the data set's first photo, float (1, 3, size, size)."""
    image = bank.images[0]
    h, w = image.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return image[:, top:top + size, left:left + size].unsqueeze(0).to(device).float() / 255.0


class Task:
    """One task's network, data and loss. ``batch(generator)`` draws a batch, ``loss(batch)`` →
    (total, {term: tensor}), ``optimize(batch, optimizer, precision)`` is one training step."""

    name: str
    model: nn.Module
    batch_size: int
    objective: PerceptualObjective | None = None
    channels_last: bool = False
    trainer: nn.Module | None = None  # ``model`` under DistributedDataParallel when many processes train

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """The network on a training batch, through ``trainer`` where there is one (its gradients are
        then averaged over the processes)."""
        return (self.trainer or self.model)(batch)

    def set_layout(self, channels_last: bool) -> None:
        """Put the model, the loss network and every batch in channels_last (NHWC) or the default layout."""
        layout = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=layout)
        if self.objective is not None:
            self.objective.lossnet.to(memory_format=layout)
        self.channels_last = channels_last

    def batch(self, generator: torch.Generator):
        raise NotImplementedError

    def loss(self, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def optimize(self, batch, optimizer: torch.optim.Optimizer,
                 precision: Precision) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One step: gradients of the loss on ``batch``, then the optimizer's update. Returns the
        detached loss terms (reading them is left to the caller: on a GPU it waits for the step)."""
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            total, terms = self.loss(batch)
        precision.step(total, optimizer)
        return total.detach(), {k: v.detach() for k, v in terms.items()}

    def preview(self) -> np.ndarray:
        """float RGB (H, W, 3) [0, 1] showing what the model does now."""
        raise NotImplementedError

    def describe(self, dataset: str) -> dict:
        """The catalog entry's words for this task: description, credit, licence and recipe extras."""
        raise NotImplementedError


class StyleTask(Task):
    """Style transfer: content photos through the transform net, scored by the perceptual objective."""

    name = "style"

    def __init__(self, recipe: StyleRecipe, objective: PerceptualObjective, bank: ImageBank, device: torch.device,
                 preview_image: torch.Tensor):
        self.recipe = recipe
        self.config = style_objective_config(recipe)
        self.objective = objective
        self.model = transform_net(width=recipe.width, blocks=recipe.blocks,
                                   pixel_shuffle=recipe.pixel_shuffle, margin=recipe.margin).to(device)
        self.data = StyleData(bank, recipe.image_size)
        self.batch_size = recipe.batch_size
        self.preview_image = preview_image

    def batch(self, generator):
        return _to_layout(self.data.batch(self.batch_size, generator), self.channels_last)

    def loss(self, content):
        terms = self.objective(self.forward(content), content)
        return terms.total, {"content": terms.content, "style": terms.style, "tv": terms.tv}

    @torch.no_grad()
    def preview(self):
        return batch_to_image(self.model(self.preview_image))

    def describe(self, dataset: str) -> dict:
        credit = style_credit(self.recipe.style_image)
        style_image = {"file": Path(self.recipe.style_image).name, "sha256": sha256_of(self.recipe.style_image),
                       "credit": credit}
        return {"description": f"{credit}: feed-forward style transfer (Johnson et al. 2016)",
                "credit": f"style: {credit}; training photos: {dataset_note(dataset)}",
                "licence": f"style image: {STYLE_IMAGE_LICENCE}; training data: {dataset_note(dataset)}",
                "recipe": {"loss_net": self.config.loss_net,
                           "loss_net_weights_sha256": self.objective.lossnet.weights_sha256,
                           "style_image": style_image}}


class SuperResTask(Task):
    """Super-resolution: low-resolution patches made from photos, scored by a pixel or feature loss."""

    name = "superres"

    def __init__(self, recipe: SuperResRecipe, objective: PerceptualObjective | None, bank: ImageBank,
                 device: torch.device, preview_image: torch.Tensor):
        self.recipe = recipe = recipe.resolved()
        self.model = build_model("superres", recipe.arch()).to(device)
        self.data = SuperResData(bank, recipe.scale, recipe.patch_size, recipe.blur_sigma)
        self.batch_size = recipe.batch_size
        self.objective = objective
        self.preview_high = preview_image
        self.preview_low = make_low_resolution(preview_image, recipe.scale, recipe.blur_sigma)

    def batch(self, generator):
        low, high = self.data.batch(self.batch_size, generator)
        return _to_layout(low, self.channels_last), _to_layout(high, self.channels_last)

    def loss(self, batch):
        low, high = batch
        output = self.forward(low)
        if self.objective is not None:
            terms = self.objective(output, high)
            return terms.total, {"feat": terms.content, "tv": terms.tv}
        pixel = pixel_loss(output.float(), high.float())
        tv = self.recipe.tv_weight * total_variation_loss(output.float()) if self.recipe.tv_weight else pixel * 0
        return pixel + tv, {"pixel": pixel, "tv": tv}

    @torch.no_grad()
    def preview(self):
        """Bicubic | network | original, side by side."""
        size = self.preview_high.shape[-2:]
        bicubic = F.interpolate(self.preview_low, size=size, mode="bicubic", align_corners=False)
        return batch_to_image(torch.cat([bicubic, self.model(self.preview_low).float(), self.preview_high], dim=3))

    def describe(self, dataset: str) -> dict:
        extra = {}
        if self.objective is not None:
            extra = {"loss_net": self.recipe.loss_net, "loss_net_weights_sha256": self.objective.lossnet.weights_sha256}
        network = "" if self.recipe.family == "srnet" else ", low-resolution convs + pixel shuffle (Shi et al. 2016)"
        return {"description": f"×{self.recipe.scale} super-resolution, {self.recipe.loss} loss (Johnson et al. "
                               f"2016){network}",
                "credit": f"training photos: {dataset_note(dataset)}",
                "licence": f"training data: {dataset_note(dataset)}", "recipe": extra}
