"""Style quality: the perceptual objective's terms for a feed-forward output beside Gatys et al.
after N iterations, on the same content images with the same objective."""
from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from livestyle.errors import InputError
from livestyle.io.images import read_image
from livestyle.models.convention import image_to_batch
from livestyle.quality.gatys import GatysConfig, optimize_image
from livestyle.quality.objective import ObjectiveConfig, PerceptualObjective, resize_long_side

@dataclass
class StyleComparison:
    """Loss terms per content image: the feed-forward output and Gatys after each iteration count."""

    images: list[str]
    feedforward: list[dict[str, float]]
    gatys: dict[int, list[dict[str, float]]]
    settings: dict
    outputs: dict[str, torch.Tensor] = field(default_factory=dict)  # "<image>:feedforward" / ":gatys<N>" → (1,3,H,W)
    variants: dict[str, list[dict[str, float]]] = field(default_factory=dict)  # e.g. "feed-forward @0.5× bicubic"

    def means(self) -> dict[str, dict[str, float]]:
        """{"feed-forward": {term: mean}, <variant>: {…}, "Gatys N it": {…}} over the images."""
        def mean(rows):
            return {t: statistics.fmean(r[t] for r in rows) for t in rows[0]}
        return {"feed-forward": mean(self.feedforward), **{name: mean(v) for name, v in self.variants.items()},
                **{f"Gatys {n} it": mean(v) for n, v in self.gatys.items()}}

    def to_dict(self) -> dict:
        return {"images": self.images, "settings": self.settings, "feedforward": self.feedforward,
                "variants": self.variants, "gatys": {str(n): v for n, v in self.gatys.items()}, "mean": self.means()}


def compare_style(model: torch.nn.Module, objective, contents: Sequence[torch.Tensor], names: Sequence[str],
                  iterations: Sequence[int], *, gatys_config=None, keep_outputs: bool = False,
                  variants: dict[str, Callable[[torch.Tensor], torch.Tensor]] | None = None) -> StyleComparison:
    """Objective terms of ``model``'s output vs Gatys after each of ``iterations`` on the same content images.

    ``contents``: (1, 3, H, W) float [0, 1] on the objective's device; ``objective``: a
    ``PerceptualObjective`` with its style target set; one Gatys run per image to max(iterations).
    ``variants``: other ways to run the model (name → stylise function on such a batch, e.g. a
    ``ReducedResolutionEngine``), scored with the same objective beside the plain feed-forward row.
    """
    gatys_config = gatys_config or GatysConfig()
    counts = sorted(set(int(n) for n in iterations))
    device = next(objective.lossnet.parameters()).device
    model = model.to(device).eval()
    variants = variants or {}
    feedforward, gatys, scored = [], {n: [] for n in counts}, {v: [] for v in variants}
    outputs = {}
    for name, content in zip(names, contents):
        if min(content.shape[-2:]) < objective.lossnet.min_side:
            h, w = content.shape[-2:]
            raise InputError(f"{name} is {w}×{h} px as scored; the loss network's taps need sides of at least "
                             f"{objective.lossnet.min_side} px")
        with torch.no_grad():
            out = model(content).float().clamp(0.0, 1.0)
            feedforward.append(objective(out, content).as_floats())
            if keep_outputs:
                outputs[f"{name}:feedforward"] = out.cpu()
            for variant, stylize in variants.items():
                out = stylize(content).to(device, torch.float32).clamp(0.0, 1.0)
                scored[variant].append(objective(out, content).as_floats())
                if keep_outputs:
                    outputs[f"{name}:{variant}"] = out.cpu()
        if counts:
            config = replace(gatys_config, iterations=counts[-1])
            result = optimize_image(objective, content, config, snapshots=counts)
            for n in counts:
                with torch.no_grad():
                    gatys[n].append(objective(result.snapshots[n], content).as_floats())
                if keep_outputs:
                    outputs[f"{name}:gatys{n}"] = result.snapshots[n].cpu()
    settings = {"gatys": gatys_config.to_dict() | {"iterations": counts},
                "objective": {"loss_net": objective.lossnet.name, "content_taps": list(objective.content_taps),
                              "style_taps": list(objective.style_taps), "content_weight": objective.content_weight,
                              "style_weight": objective.style_weight, "tv_weight": objective.tv_weight,
                              "style_tap_weights": objective.style_tap_weights,
                              "loss_net_weights_sha256": objective.lossnet.weights_sha256}}
    return StyleComparison(list(names), feedforward, gatys, settings, outputs, scored)


def style_table_markdown(comparison: StyleComparison) -> str:
    """Markdown: mean content / style / TV / total loss of feed-forward vs Gatys (per row), lower is better."""
    means = comparison.means()
    reference = means["feed-forward"]["total"]
    lines = ["| method | content | style | TV | total | total vs feed-forward |", "|---|---|---|---|---|---|"]
    for method, terms in means.items():
        lines.append(f"| {method} | {terms['content']:.4g} | {terms['style']:.4g} | {terms['tv']:.4g} | "
                     f"{terms['total']:.4g} | {terms['total'] / reference - 1:+.1%} |")
    s = comparison.settings
    lines += ["", f"Mean over {len(comparison.images)} image(s): {', '.join(comparison.images)}. Same objective for "
              f"all rows: loss network {s['objective']['loss_net']}, weighted terms (total = content + style + TV). "
              f"Gatys: {s['gatys']['optimizer']}, start from {s['gatys']['init']}. The paper finds the "
              "feed-forward output matches Gatys after about 50–100 L-BFGS iterations."]
    if comparison.variants:
        lines.append("Rows with @F×: the same model run at F × the input size, then upsampled (bicubic, or guided by "
                     "the full-resolution input) — the speed option `--infer-scale F --upsample …`; losses are "
                     "measured at full resolution.")
    return "\n".join(lines) + "\n"


def objective_config_from_recipe(recipe: dict | None):
    """The ``ObjectiveConfig`` a catalog recipe states (its "objective" section), or None where it has none."""
    section = (recipe or {}).get("objective")
    if not isinstance(section, dict):
        return None
    known = ObjectiveConfig.__dataclass_fields__
    values = {k: (tuple(v) if isinstance(v, list) else v) for k, v in section.items() if k in known}
    return ObjectiveConfig(**values)


def style_quality(model: torch.nn.Module, objective: PerceptualObjective, images: Sequence[str],
                  device: torch.device, gatys_iterations: Sequence[int] = (), long_side: int = 512) -> dict:
    """A catalog ``quality`` record: the objective's terms for ``model`` on content photos (long side
    ``long_side``), mean over photos, beside Gatys after each of ``gatys_iterations`` (``compare_style``)."""
    contents = [resize_long_side(image_to_batch(read_image(path).rgb, device), long_side) for path in images]
    comparison = compare_style(model, objective, contents, [Path(p).name for p in images], gatys_iterations)
    return {"style_losses": {"images": comparison.images, "long_side": long_side, "mean": comparison.means()}}
