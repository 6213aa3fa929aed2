"""Small file helpers: hashing, output-path checks, atomic writes, and the one JSON encoding."""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from livestyle.errors import OutputError


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file: the same path however spelled, or links to one file."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists() and os.path.samefile(a, b):
        return True
    return a.resolve() == b.resolve()


def is_within(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (paths resolved)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return folder == path or folder in path.parents


def check_output_path(output: str | os.PathLike, *inputs: str | os.PathLike | None) -> Path:
    """Validate an output path: not one of the inputs, its folder exists and is writable."""
    output = Path(output)
    for inp in inputs:
        if inp is not None and same_file(inp, output):
            raise OutputError(f"output {output} is the input file; choose another name (inputs are never overwritten)")
    folder = output.parent if str(output.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {output}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {output}: folder {folder} is not writable")
    if output.is_dir():
        raise OutputError(f"cannot write {output}: it is a folder")
    return output


def temporary_path(output: str | os.PathLike) -> Path:
    """A fresh unique hidden name beside ``output`` with the same extension; the file is not created.

    The writer creates it, so it gets the usual permissions (mkstemp would make it 0600, and the
    rename onto ``output`` would keep that).
    """
    output = Path(output)
    return output.parent / f".{output.stem}.{secrets.token_hex(6)}.part{output.suffix}"


@contextlib.contextmanager
def atomic_output(output: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``output`` (same extension); rename it onto ``output`` on success.

    On an exception the temporary file is removed and ``output`` is left as it was.
    """
    output = Path(output)
    tmp = temporary_path(output)
    try:
        yield tmp
        os.replace(tmp, output)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_output_folder(folder: str | os.PathLike) -> Path:
    """Create ``folder`` (and its parents) where needed and check that files can be written in it.

    Commands call it before their work, so that a bad ``--out`` fails at once, not after minutes.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create output folder {folder}: {exc.strerror or exc}") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder {folder} is not writable")
    return folder


def _strict_json(value):
    """``value`` with every non-finite float as None: JSON has no Infinity or NaN (Python writes them,
    strict parsers refuse the file). An exact reconstruction's PSNR is such an infinity."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict_json(v) for v in value]
    return value


def write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as strict UTF-8 JSON (indent 2, non-finite numbers as null), atomically."""
    path = Path(path)
    with atomic_output(path) as tmp:
        text = json.dumps(_strict_json(data), indent=2, ensure_ascii=False, allow_nan=False)
        tmp.write_text(text + "\n", encoding="utf-8")
    return path


def write_json_and_markdown(folder: str | os.PathLike, stem: str, data: dict, markdown: str) -> list[Path]:
    """Write ``<stem>.json`` and ``<stem>.md`` into ``folder`` (created), each atomically; returns both paths."""
    folder = check_output_folder(folder)
    paths = [folder / f"{stem}.json", folder / f"{stem}.md"]
    try:
        write_json(paths[0], data)
        with atomic_output(paths[1]) as tmp:
            tmp.write_text(markdown, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write reports into {folder}: {exc.strerror or exc}") from exc
    return paths
