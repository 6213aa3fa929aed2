"""Still images in and out: PNG/JPEG/…, greyscale, alpha and 16-bit handled; atomic writes."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from livestyle.files import atomic_output, check_output_path
from livestyle.errors import InputError, OutputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
ALPHA_FORMATS = {".png", ".webp", ".tif", ".tiff"}
SIXTEEN_BIT_FORMATS = {".png", ".tif", ".tiff"}


@dataclass
class Image:
    """A decoded image: float32 RGB (H, W, 3) in [0, 1], optional alpha (H, W) in [0, 1], bit depth."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    bit_depth: int = 8


def read_image(path: str | os.PathLike) -> Image:
    """Decode an image file; greyscale becomes RGB, alpha is kept apart, 16-bit keeps its precision."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"input image not found: {path}")
    # IMREAD_UNCHANGED keeps 16 bits and alpha but not the camera's EXIF orientation: applied below.
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if data is None or data.size == 0:
        raise InputError(f"cannot decode {path}: not an image or the file is corrupt")
    data = apply_exif_orientation(data, exif_orientation(path))
    if data.dtype == np.uint8:
        depth, scale = 8, 255.0
    elif data.dtype == np.uint16:
        depth, scale = 16, 65535.0
    elif data.dtype == np.float32:
        depth, scale = 32, 1.0
    else:
        raise InputError(f"cannot use {path}: unsupported pixel type {data.dtype}")
    pixels = data.astype(np.float32) / scale
    alpha = None
    if pixels.ndim == 2:
        rgb = np.repeat(pixels[..., None], 3, axis=2)
    elif pixels.shape[2] == 1:
        rgb = np.repeat(pixels, 3, axis=2)
    elif pixels.shape[2] == 2:  # greyscale + alpha
        rgb, alpha = np.repeat(pixels[..., :1], 3, axis=2), pixels[..., 1]
    elif pixels.shape[2] == 3:
        rgb = pixels[..., ::-1]
    elif pixels.shape[2] == 4:
        rgb, alpha = pixels[..., 2::-1], pixels[..., 3]
    else:
        raise InputError(f"cannot use {path}: {pixels.shape[2]} channels")
    return Image(np.ascontiguousarray(np.clip(rgb, 0.0, 1.0)), alpha, min(depth, 16))


def exif_orientation(path: str | os.PathLike) -> int:
    """The EXIF orientation tag (1–8; 1 = as stored) of an image file, 1 where it has none."""
    from PIL import Image as PILImage, UnidentifiedImageError

    try:
        with PILImage.open(path) as image:  # reads the header only
            value = image.getexif().get(0x0112, 1)
    except (OSError, UnidentifiedImageError, ValueError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def apply_exif_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """(H, W[, C]) pixels as stored → as they are meant to be seen, for EXIF orientation 1–8."""
    turned = {
        1: pixels,
        2: pixels[:, ::-1],  # mirrored left–right
        3: pixels[::-1, ::-1],  # upside down
        4: pixels[::-1],  # mirrored top–bottom
        5: np.swapaxes(pixels, 0, 1),  # mirrored along the main diagonal
        6: np.rot90(pixels, -1),  # stored turned 90° anticlockwise: turn clockwise
        7: np.swapaxes(pixels[::-1, ::-1], 0, 1),  # mirrored along the other diagonal
        8: np.rot90(pixels, 1),
    }[orientation]
    return np.ascontiguousarray(turned)


def check_image_output(path: str | os.PathLike, *inputs: str | os.PathLike | None) -> Path:
    """``check_output_path``, and the extension names an image format this OpenCV can write."""
    path = check_output_path(path, *inputs)
    if not cv2.haveImageWriter(str(path)):
        raise OutputError(f"cannot write {path}: {path.suffix or 'no extension'} is not an image format this "
                          "OpenCV writes (e.g. .png, .jpg, .tif, .webp)")
    return path


def write_image(path: str | os.PathLike, image: Image, *, inputs: tuple = ()) -> Path:
    """Encode ``image`` to ``path`` atomically (temporary file, then rename); never onto an input.

    Alpha is written where the format has it; 16-bit precision is kept for PNG/TIFF.
    """
    path = check_image_output(path, *inputs)
    suffix = path.suffix.lower()
    sixteen = image.bit_depth == 16 and suffix in SIXTEEN_BIT_FORMATS
    scale, dtype = (65535.0, np.uint16) if sixteen else (255.0, np.uint8)
    channels = [image.rgb[..., ::-1]]
    if image.alpha is not None and suffix in ALPHA_FORMATS:
        channels.append(image.alpha[..., None])
    pixels = np.concatenate(channels, axis=2)
    encoded = (np.clip(pixels, 0.0, 1.0) * scale + 0.5).astype(dtype)
    with atomic_output(path) as tmp:
        try:
            ok = cv2.imwrite(str(tmp), encoded)
        except cv2.error as exc:
            raise OutputError(f"cannot encode {path}: {exc.msg.strip() if hasattr(exc, 'msg') else exc}") from exc
        if not ok:
            raise OutputError(f"cannot write {path}: unknown image format or the disk refused it")
    return path


def resize_alpha(alpha: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an alpha plane to (width, height) with bicubic interpolation."""
    return np.clip(cv2.resize(alpha, size, interpolation=cv2.INTER_CUBIC), 0.0, 1.0)


def list_images(folder: str | os.PathLike, *, recursive: bool = False, what: str = "folder") -> list[Path]:
    """The image files in ``folder`` (and below it with ``recursive``), in sorted order; a missing folder,
    or one without images, is an error that calls it ``what``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{what} not found: {folder}")
    found = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
    return files
