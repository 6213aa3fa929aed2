"""The Ray actor of `livestyle batch`: one per worker process, holding one engine, running jobs with
the code of `livestyle video` and `image` (``livestyle.pipeline.jobs``).

A job the user can fix (a damaged input, an unwritable output) comes back as a failed outcome with
its one-line message, and is not retried: it would fail again. Anything else is raised, so that Ray
retries it (as it retries a job whose worker process died) and reports it when the retries are spent.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict

from livestyle.cluster.plan import EngineSettings, Job, JobSettings, ModelPayload, load_payload
from livestyle.errors import LivestyleError
from livestyle.io.sinks import zero_new_allocations

REPORT_EVERY_S = 0.5  # how often a running video tells the progress board its frame count


class JobCancelled(LivestyleError):
    """The driver cancelled the job (Ctrl-C): it stops, and leaves no output behind."""


class ProgressBoard:
    """A Ray actor where running jobs post their frame counts, read by the driver's progress bar."""

    def __init__(self):
        self.frames: dict[str, int] = {}

    def post(self, key: str, frames: int) -> None:
        self.frames[key] = frames

    def read(self) -> dict[str, int]:
        return dict(self.frames)


class FileWorker:
    """Runs jobs on one engine, built on its first job from the batch's engine settings and the model
    put once into the object store (each job brings ``[ObjectRef]`` of the ``ModelPayload``: fetched
    by the first); ``threads``: the CPU engine's threads (this worker's share of the cores). The
    constructor takes plain values only: Ray can restart an actor whose arguments live nowhere else."""

    def __init__(self, engine: EngineSettings, threads: int | None = None):
        zero_new_allocations()  # lossy outputs equal `video`'s, as if each file had a fresh process
        if threads:
            import torch

            torch.set_num_threads(threads)
        self.settings, self.threads = engine, threads
        self.payload: ModelPayload | None = None
        self.engine = None
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def where(self) -> str:
        """host:pid of this worker process."""
        return self.name

    def _engine(self, payload: list):
        if self.engine is None:
            import ray

            from livestyle.engines.factory import build_engine

            self.payload = ray.get(payload[0])
            self.engine = build_engine(load_payload(self.payload), threads=self.threads, **asdict(self.settings))
        return self.engine

    def run(self, job: Job, settings: JobSettings, payload: list, board=None) -> dict:
        """Do ``job``; returns its outcome: status ("done", "failed", "cancelled"), frames, seconds, fps,
        worker, error, warning and the input's sha256. ``board``: a ``ProgressBoard`` for frame counts."""
        outcome = {"status": "done", "frames": 0, "seconds": 0.0, "fps": 0.0, "worker": self.name, "error": "",
                   "warning": "", "input_sha256": ""}
        started = time.perf_counter()
        try:
            if job.hash_input:
                from livestyle.files import sha256_of

                outcome["input_sha256"] = sha256_of(job.input)
            engine = self._engine(payload)
            if job.kind == "image":
                self._image(engine, job, settings, outcome)
            else:
                self._video(engine, job, settings, outcome, board)
        except JobCancelled:
            outcome["status"] = "cancelled"
        except LivestyleError as exc:
            outcome.update(status="failed", error=str(exc))
        outcome["seconds"] = round(time.perf_counter() - started, 3)
        if outcome["frames"]:
            outcome["fps"] = round(outcome["frames"] / max(outcome["seconds"], 1e-9), 2)
        return outcome

    def _image(self, engine, job: Job, settings: JobSettings, outcome: dict) -> None:
        from livestyle.pipeline.jobs import run_image

        run_image(engine, job.input, job.output, effects=settings.effects, model_name=self.payload.name)
        outcome["frames"] = 1

    def _video(self, engine, job: Job, settings: JobSettings, outcome: dict, board) -> None:
        import ray

        from livestyle.pipeline.jobs import VideoJob

        context = ray.get_runtime_context()
        posted = [0.0]

        def monitor(stats) -> None:
            if context.is_canceled():
                raise JobCancelled("cancelled")
            now = time.perf_counter()
            if board is not None and now - posted[0] >= REPORT_EVERY_S:
                posted[0] = now
                board.post.remote(job.key, stats.frames_out)

        video = VideoJob(engine, job.input, job.output, size=settings.size, effects=settings.effects,
                         encoding=settings.encoding, batch=settings.batch, segment=job.segment, keep_partial=False)
        result = video.run(monitor)
        if board is not None:
            board.post.remote(job.key, result.frames)
        if result.status != "complete":  # a signal reached the worker: nothing was kept
            raise JobCancelled(result.status)
        outcome.update(frames=result.frames, warning=result.warning or "")
