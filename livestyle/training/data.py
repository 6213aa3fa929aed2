"""Training data: photos decoded once into memory as uint8, random crops drawn from there.

A data set is a folder of photos (searched recursively) or a *pack*: one ``.npz`` file holding the
encoded bytes of many photos (``bench/gpu/pack_data.py`` writes them; small enough to carry to a GPU
machine). Either way every photo is decoded exactly once, resized once, and kept as a uint8
(3, H, W) tensor on the training device; batches are cut from there, so training never waits on
JPEG decoding. Files that do not decode are skipped and counted, never fatal.

Style (Johnson et al. 2016, Sec. 4.1): photos resized so the short side is 256, random 256×256
crops. Super-resolution (Sec. 4.2): random 288×288 high-resolution patches, and low-resolution inputs
made from them as the benchmarks make theirs (``livestyle.quality.superres_eval.make_low_resolution``).
"""
from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from livestyle.errors import InputError
from livestyle.io.images import list_images
from livestyle.quality.superres_eval import make_low_resolution

PACK_SUFFIX = ".npz"
PACK_KEYS = ("encoded", "offsets", "names")


def write_pack(named_bytes: Iterable[tuple[str, bytes]], path: str | os.PathLike) -> int:
    """Store encoded images as one ``.npz`` (uint8 bytes, int64 offsets, names; no pickle). Returns its size."""
    from livestyle.files import atomic_output

    names, blobs = [], []
    for name, blob in named_bytes:
        names.append(name)
        blobs.append(np.frombuffer(blob, dtype=np.uint8))
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    encoded = np.concatenate(blobs) if blobs else np.zeros(0, dtype=np.uint8)
    path = Path(path)
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append a second ".npz"
            np.savez(f, encoded=encoded, offsets=offsets, names=np.array(names, dtype=str))
    return path.stat().st_size


def read_pack(path: str | os.PathLike) -> list[tuple[str, bytes]]:
    """The (name, encoded bytes) pairs of a pack written by :func:`write_pack`."""
    try:
        with np.load(path, allow_pickle=False) as pack:
            if any(k not in pack for k in PACK_KEYS):
                raise InputError(f"{path} is not a livestyle image pack (it lacks {', '.join(PACK_KEYS)})")
            encoded, offsets, names = pack["encoded"], pack["offsets"], pack["names"]
    except OSError as exc:
        raise InputError(f"cannot read image pack {path}: {exc}") from exc
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:  # not an .npz, a truncated one, or one
        # holding pickled objects (never loaded)
        raise InputError(f"{path} is not a livestyle image pack, or it is truncated (bench/gpu/pack_data.py writes "
                         "them)") from exc
    return [(str(n), encoded[offsets[i]:offsets[i + 1]].tobytes()) for i, n in enumerate(names)]


def resize_short_side(rgb: np.ndarray, short_side: int) -> np.ndarray:
    """uint8 (H, W, 3) → uint8 with min(H, W) == ``short_side``, aspect kept (area filter to shrink)."""
    h, w = rgb.shape[:2]
    factor = short_side / min(h, w)
    if factor == 1:
        return rgb
    size = (max(short_side, round(w * factor)), max(short_side, round(h * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(rgb, size, interpolation=interpolation)


def decode_rgb(blob: bytes) -> np.ndarray | None:
    """Encoded image bytes → uint8 RGB (H, W, 3), or None where the bytes do not decode.

    Greyscale becomes three equal channels and alpha is dropped (training uses RGB only).
    """
    data = np.frombuffer(blob, dtype=np.uint8)
    if data.size == 0:
        return None
    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.ndim != 3 or min(bgr.shape[:2]) < 2:
        return None
    return np.ascontiguousarray(bgr[..., ::-1])


@dataclass
class DecodedImages:
    """Photos decoded from a folder or pack: uint8 RGB (H, W, 3) arrays, and what was skipped."""

    images: list[np.ndarray]
    names: list[str]
    skipped: list[str]  # names that did not decode (corrupt, truncated, not an image)
    source: str
    enlarged: int = 0  # photos whose short side was below ``min_side``, so were upsampled

    def __len__(self) -> int:
        return len(self.images)


def _sources(source: str | os.PathLike) -> list[tuple[str, Path | bytes]]:
    source = Path(source)
    if source.is_file() and source.suffix == PACK_SUFFIX:
        return list(read_pack(source))
    if source.is_file():
        raise InputError(f"data set {source} is a file; give a folder of photos or a {PACK_SUFFIX} image pack")
    return [(str(p.relative_to(source)), p) for p in list_images(source, recursive=True, what="data set folder")]


def decode_images(source: str | os.PathLike, *, short_side: int | None = None, min_side: int | None = None,
                  limit: int | None = None, workers: int | None = None) -> DecodedImages:
    """Decode every photo of a folder or pack once, in parallel threads (OpenCV releases the GIL).

    ``short_side``: resize each so its short side is exactly this; ``min_side``: only enlarge those
    whose short side is smaller. ``limit``: the first N files in sorted order (for small runs).
    Raises InputError where nothing decodes.
    """
    items = _sources(source)[:limit] if limit else _sources(source)
    if not items:
        raise InputError(f"no images in data set {source}")

    def load(item: tuple[str, Path | bytes]) -> tuple[np.ndarray | None, bool]:
        """(RGB or None where it does not decode, whether it was enlarged to ``min_side``)."""
        name, data = item
        if isinstance(data, Path):
            try:
                data = data.read_bytes()
            except OSError:
                return None, False
        rgb = decode_rgb(data)
        if rgb is None:
            return None, False
        if short_side is not None:
            return resize_short_side(rgb, short_side), False
        if min_side is not None and min(rgb.shape[:2]) < min_side:
            return resize_short_side(rgb, min_side), True
        return rgb, False

    with ThreadPoolExecutor(max_workers=workers or min(16, os.cpu_count() or 1)) as pool:
        decoded = list(pool.map(load, items))
    images = [rgb for rgb, _ in decoded if rgb is not None]
    names = [name for (name, _), (rgb, _) in zip(items, decoded) if rgb is not None]
    skipped = [name for (name, _), (rgb, _) in zip(items, decoded) if rgb is None]
    if not images:
        raise InputError(f"none of the {len(items)} files in data set {source} could be decoded")
    enlarged = sum(was_enlarged for _, was_enlarged in decoded)
    return DecodedImages(images, names, skipped, str(source), enlarged)


class ImageBank:
    """Decoded photos as uint8 (3, H, W) tensors on one device; draws random square crops.

    Randomness comes only from the ``torch.Generator`` passed in (a CPU one), so a run with a
    saved generator state continues exactly.
    """

    def __init__(self, decoded: DecodedImages, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.names = decoded.names
        self.skipped = decoded.skipped
        self.images = [torch.from_numpy(rgb).permute(2, 0, 1).contiguous().to(self.device) for rgb in decoded.images]

    def __len__(self) -> int:
        return len(self.images)

    def min_side(self) -> int:
        return min(min(t.shape[-2:]) for t in self.images)

    def sample_crops(self, count: int, size: int, generator: torch.Generator, flip: bool = True) -> torch.Tensor:
        """``count`` random ``size``² crops (random photo, place, horizontal flip) → uint8 (N, 3, size, size)."""
        if self.min_side() < size:
            raise InputError(f"crop size {size} is larger than the smallest photo ({self.min_side()} px)")
        picks = torch.randint(len(self.images), (count,), generator=generator).tolist()
        fractions = torch.rand((count, 2), generator=generator, dtype=torch.float64).tolist()
        flips = torch.rand((count,), generator=generator).tolist()
        crops = []
        for index, (fy, fx), f in zip(picks, fractions, flips):
            image = self.images[index]
            h, w = image.shape[-2:]
            top, left = int(fy * (h - size + 1)), int(fx * (w - size + 1))
            crop = image[:, top:top + size, left:left + size]
            crops.append(crop.flip(-1) if flip and f < 0.5 else crop)
        return torch.stack(crops)


def to_float(images: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (N, 3, H, W) → float RGB in [0, 1]."""
    return images.to(dtype) / 255.0


class StyleData:
    """Content batches for style training: random ``crop``×``crop`` crops, float RGB [0, 1] (N, 3, crop, crop)."""

    def __init__(self, bank: ImageBank, crop: int = 256):
        self.bank, self.crop = bank, crop

    def batch(self, size: int, generator: torch.Generator) -> torch.Tensor:
        return to_float(self.bank.sample_crops(size, self.crop, generator))


class SuperResData:
    """(low, high) pairs for SR training: high (N, 3, patch, patch), low (N, 3, patch/s, patch/s), in [0, 1]."""

    def __init__(self, bank: ImageBank, scale: int, patch: int = 288, sigma: float = 0.0):
        if patch % scale:
            raise InputError(f"patch size {patch} is not a multiple of the scale {scale}")
        self.bank, self.scale, self.patch, self.sigma = bank, scale, patch, sigma

    def batch(self, size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        high = to_float(self.bank.sample_crops(size, self.patch, generator))
        return make_low_resolution(high, self.scale, self.sigma), high


def load_bank(source: str | os.PathLike, *, device: torch.device | str = "cpu", short_side: int | None = None,
              min_side: int | None = None, limit: int | None = None) -> ImageBank:
    """Decode a folder or pack once and place it on ``device`` (see :func:`decode_images`)."""
    return ImageBank(decode_images(source, short_side=short_side, min_side=min_side, limit=limit), device)


def encode_for_pack(rgb: np.ndarray, quality: int = 95) -> bytes:
    """uint8 RGB (H, W, 3) → JPEG bytes at ``quality`` (what packs hold)."""
    ok, buffer = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise InputError("JPEG encoding failed")
    return buffer.tobytes()


def pack_images(decoded: DecodedImages, path: str | os.PathLike, quality: int = 95) -> int:
    """Write decoded (already resized) photos as a JPEG pack; returns the file size in bytes."""
    return write_pack(((n, encode_for_pack(rgb, quality)) for n, rgb in zip(decoded.names, decoded.images)), path)
