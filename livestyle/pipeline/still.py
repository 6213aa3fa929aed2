"""One still image through an engine: float HWC at the edges, the engine's batch layout inside."""
from __future__ import annotations

from livestyle.engines.base import Engine
from livestyle.io.images import Image, resize_alpha
from livestyle.models.convention import batch_to_image, image_to_batch


def stylize_image(engine: Engine, image: Image) -> Image:
    """Run ``engine`` on a decoded image; alpha is carried over (resized for SR), bit depth kept."""
    rgb = batch_to_image(engine(image_to_batch(image.rgb)))
    alpha = image.alpha
    if alpha is not None and alpha.shape != rgb.shape[:2]:
        alpha = resize_alpha(alpha, (rgb.shape[1], rgb.shape[0]))
    return Image(rgb, alpha, image.bit_depth)
