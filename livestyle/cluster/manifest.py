"""The batch manifest in OUTDIR: for each output, what it was made from (the input's size, mtime and
sha256, the model's sha256, the options) and how it went. A rerun skips an output only where all of
these still hold and the output is there, whole; a changed input, model or option redoes it."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from livestyle.cluster import MANIFEST_FILE
from livestyle.cluster.inputs import InputFile
from livestyle.errors import OutputError
from livestyle.files import sha256_of, write_json

MANIFEST_FORMAT = "livestyle-batch-manifest/1"


@dataclass
class FileOutcome:
    """How one file went: status "done", "skipped" (done before), "failed" or "cancelled"; ``output``
    relative to OUTDIR, ``input`` as given; ``worker``: host:pid of the worker(s) that did it."""

    input: str
    output: str
    status: str
    frames: int = 0
    fps: float = 0.0
    seconds: float = 0.0
    worker: str = ""
    error: str = ""
    warning: str = ""


@dataclass
class Record(FileOutcome):
    """One output's line in the manifest: its outcome, and what it was made from."""

    input_size: int = 0
    input_mtime_ns: int = 0
    input_sha256: str = ""
    model_sha256: str = ""
    options: dict = field(default_factory=dict)
    output_size: int = 0
    finished_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


class Manifest:
    """``OUTDIR/livestyle-batch.json``: the records by output path. Only the driver writes it, after
    each finished file (atomically), so an interrupted batch keeps what it finished."""

    def __init__(self, outdir: str | os.PathLike):
        self.outdir = Path(outdir)
        self.path = self.outdir / MANIFEST_FILE
        self.records: dict[str, Record] = {}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                if data.get("format") != MANIFEST_FORMAT:
                    raise ValueError(f"format {data.get('format')!r}")
                self.records = {r["output"]: Record(**r) for r in data["files"]}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise OutputError(f"{self.path} is not a livestyle batch manifest ({exc}); move it away to "
                                  "start afresh") from exc

    def is_done(self, item: InputFile, model_sha256: str, options: dict) -> bool:
        """Whether ``item``'s output is whole and was made from this input, model and options. A file
        whose size or mtime changed is hashed: touched but equal still counts as done."""
        record = self.records.get(item.output_relative.as_posix())
        output = self.outdir / item.output_relative
        if record is None or record.status != "done" or record.model_sha256 != model_sha256 \
                or record.options != options or not output.is_file() or output.stat().st_size != record.output_size:
            return False
        stat = item.path.stat()
        if (stat.st_size, stat.st_mtime_ns) == (record.input_size, record.input_mtime_ns):
            return True
        if stat.st_size != record.input_size or sha256_of(item.path) != record.input_sha256:
            return False
        record.input_mtime_ns = stat.st_mtime_ns  # touched, not changed
        return True

    def record(self, item: InputFile, outcome: FileOutcome, *, input_sha256: str, model_sha256: str,
               options: dict) -> Record:
        """Add (or replace) ``item``'s record of ``outcome``."""
        stat = item.path.stat()
        output = self.outdir / item.output_relative
        done = outcome.status == "done" and output.is_file()
        record = Record(**asdict(outcome), input_size=stat.st_size, input_mtime_ns=stat.st_mtime_ns,
                        input_sha256=input_sha256, model_sha256=model_sha256, options=options,
                        output_size=output.stat().st_size if done else 0)
        self.records[record.output] = record
        return record

    def save(self) -> None:
        try:
            write_json(self.path, {"format": MANIFEST_FORMAT,
                                   "files": [asdict(r) for _, r in sorted(self.records.items())]})
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from exc
