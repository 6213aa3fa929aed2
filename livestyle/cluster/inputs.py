"""`livestyle batch` inputs: files, folders (searched recursively) and globs of videos and images,
each with the path its output takes under OUTDIR."""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

from livestyle.cluster import MANIFEST_FILE, PARTS_FOLDER
from livestyle.errors import InputError
from livestyle.files import is_within
from livestyle.io.images import IMAGE_SUFFIXES

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mkv", ".mov", ".webm", ".avi", ".ts", ".mts", ".mpg", ".mpeg",
                            ".flv", ".wmv", ".3gp", ".ogv"})
WRITABLE_VIDEO_SUFFIXES = frozenset({".mp4", ".mkv", ".mov", ".webm"})  # others are written as .mp4
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class InputFile:
    """One file to do: ``path`` (as found), ``relative`` (its output's path under OUTDIR), ``kind``."""

    path: Path
    relative: Path
    kind: str  # "video" | "image"

    @property
    def output_relative(self) -> Path:
        """The output's path under OUTDIR: the input's, with .mp4 where the input's format is not written."""
        if self.kind == "video" and self.relative.suffix.lower() not in WRITABLE_VIDEO_SUFFIXES:
            return self.relative.with_suffix(".mp4")
        return self.relative


def kind_of(path: Path) -> str | None:
    """"video", "image", or None for a file of neither kind (by its extension)."""
    suffix = path.suffix.lower()
    return "video" if suffix in VIDEO_SUFFIXES else "image" if suffix in IMAGE_SUFFIXES else None


def _static_root(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard (what the outputs' paths are relative to)."""
    parts = Path(pattern).parts
    root = []
    for part in parts[:-1]:
        if GLOB_CHARS & set(part):
            break
        root.append(part)
    return Path(*root) if root else Path(".")


def find_inputs(arguments: list[str], outdir: str | os.PathLike) -> list[InputFile]:
    """The files named by ``arguments``, in order, each once; OUTDIR's own files are left out.

    A file keeps its name under OUTDIR; a folder's files keep their paths relative to the folder; a
    glob's matches, their paths relative to the glob's folder. Named files of another kind are an
    error; in folders and globs they are passed over.
    """
    found: dict[Path, InputFile] = {}

    def add(path: Path, relative: Path, named: bool) -> None:
        kind = kind_of(path)
        if kind is None:
            if named:
                raise InputError(f"{path} is neither a video nor an image (by its extension)")
            return
        if is_within(path, outdir):
            return  # outputs of an earlier run inside an input folder
        found.setdefault(path.resolve(), InputFile(path, relative, kind))

    for argument in arguments:
        path = Path(argument)
        if path.is_file():
            add(path, Path(path.name), named=True)
        elif path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if PARTS_FOLDER not in child.parts and child.name != MANIFEST_FILE:
                    add(child, child.relative_to(path), named=False)
        elif GLOB_CHARS & set(argument):
            root = _static_root(argument)
            matches = sorted(Path(m) for m in glob.glob(argument, recursive=True) if Path(m).is_file())
            if not matches:
                raise InputError(f"no file matches {argument}")
            for match in matches:
                add(match, match.relative_to(root), named=False)
        else:
            raise InputError(f"input not found: {argument}")
    if not found:
        raise InputError("no videos or images among the inputs")
    files = list(found.values())
    by_output: dict[str, InputFile] = {}
    for item in files:
        key = item.output_relative.as_posix().lower()
        if key in by_output:
            raise InputError(f"{by_output[key].path} and {item.path} would both be written to "
                             f"{item.output_relative}; pass their folders instead of the files")
        by_output[key] = item
    return files
