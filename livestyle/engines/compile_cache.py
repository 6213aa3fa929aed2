"""A persistent cache for torch.compile in livestyle's cache folder, beside the ONNX files and
TensorRT engines, so that only the first run of a network at a frame size pays for compiling.

torch.compile already caches on disk (inductor's FX-graph and AOTAutograd caches, compiled kernels,
autotuning results), but by default in the system's temporary folder, which a reboot empties. Its
keys are what this cache needs: the traced graph (architecture, input shape and dtype, not the
weights, which stay inputs of the compiled code), the inductor settings, the torch and Triton
versions and the device. Models of one architecture therefore share compiled code.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

ENV_INDUCTOR_CACHE = "TORCHINDUCTOR_CACHE_DIR"  # torch's own setting; a user's value is respected
SUBDIR = "torch-compile"


def use_persistent_compile_cache(cache_dir: str | os.PathLike | None = None) -> Path | None:
    """Point torch.compile's on-disk caches at ``<cache_dir>/torch-compile`` (default cache folder:
    ``livestyle.engines.export.cache.default_cache_dir()``) unless $TORCHINDUCTOR_CACHE_DIR is set; returns the folder in use,
    or None (with a warning) where the folder cannot be written and torch keeps its own default.

    Call before the first compile of the process: torch's compile workers take the folder with them
    when they start.
    """
    from livestyle.engines.export.cache import default_cache_dir

    chosen = os.environ.get(ENV_INDUCTOR_CACHE)
    # torch writes its default into the variable when it first looks (importing its config does), so
    # only a different value is the user's choice.
    if chosen and os.path.abspath(chosen) != os.path.abspath(_torch_default_cache_dir()):
        return Path(chosen)

    folder = Path(cache_dir if cache_dir is not None else default_cache_dir()) / SUBDIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        usable = os.access(folder, os.W_OK | os.X_OK)
    except OSError:
        usable = False
    if not usable:
        warnings.warn(f"compile cache {folder} cannot be written; torch.compile keeps its own cache in the "
                      f"temporary folder (set ${ENV_INDUCTOR_CACHE} to choose one)", stacklevel=2)
        return None
    os.environ[ENV_INDUCTOR_CACHE] = str(folder)
    return folder


def _torch_default_cache_dir() -> str:
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    return default_cache_dir()


__all__ = ["ENV_INDUCTOR_CACHE", "use_persistent_compile_cache"]
