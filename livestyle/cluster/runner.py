"""The driver of `livestyle batch`: Ray (a local instance, or a running cluster), one actor per
worker holding the engine, the jobs handed to idle workers, Ray's retries, the progress bar, the
joins of split videos, the manifest, and Ctrl-C.

Ray does the distributing and the fault tolerance: an actor restarts whenever its process dies
(``max_restarts=-1``) and the job it was running is retried (``max_task_retries``), as is a job that
raised an unexpected exception (``retry_exceptions``). The model goes to the object store once.
"""
from __future__ import annotations

import glob
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from livestyle.cluster import RAY_MISSING
from livestyle.cluster.manifest import FileOutcome, Manifest
from livestyle.cluster.plan import FilePlan, Job, JobSettings, ModelPayload
from livestyle.cluster.worker import FileWorker, ProgressBoard
from livestyle.errors import BackendUnavailableError, LivestyleError
from livestyle.pipeline.runner import STOP_SIGNALS

POLL_S = 0.5
# Ray ≥ 2.59 starts clusters with token authentication on; a driver that joins one by address needs it too.
AUTH_HINT = ("; if it uses token authentication, set RAY_AUTH_MODE=token here, with its token in "
             "~/.ray/auth_token or RAY_AUTH_TOKEN (`ray get-auth-token` on the head prints it)")
CANCEL_WAIT_S = 15.0  # after Ctrl-C: how long running jobs get to stop and clean up before workers are killed


@dataclass(frozen=True)
class ClusterOptions:
    """Where and how the jobs run: ``address`` None starts a local Ray, "auto" or HOST:PORT joins a
    cluster; ``workers`` (default: as many as the resources allow); resources and retries per task."""

    address: str | None = None
    workers: int | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0
    retries: int = 2


@dataclass
class BatchResult:
    files: list[FileOutcome]
    seconds: float
    workers: int
    interrupted: bool = False

    @property
    def failed(self) -> list[FileOutcome]:
        return [f for f in self.files if f.status == "failed"]


def import_ray():
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError(RAY_MISSING) from None
    return ray


def connect(address: str | None, say: Callable[[str], None]) -> bool:
    """Join the cluster at ``address``, or start a local Ray; True where this call started one (to stop)."""
    import logging

    ray = import_ray()
    if ray.is_initialized():
        return False
    if address not in (None, "auto"):
        check_reachable(address)
    try:
        if address is None:  # Ray's own notices (e.g. on cluster security) do not concern a private instance
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        hint = "" if address in (None, "auto") else AUTH_HINT
        raise BackendUnavailableError(f"cannot reach the Ray cluster at {address}: {exc}".splitlines()[0]
                                      + hint) from exc
    resources = ray.cluster_resources()
    say(f"Ray {'local instance' if address is None else 'cluster ' + address}: {len(ray.nodes())} node(s), "
        f"{resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs")
    return True


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A HOST:PORT (or ray://HOST:PORT) that accepts a connection; ray.init would retry for minutes."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BackendUnavailableError(f"--address takes auto or HOST:PORT, not {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise BackendUnavailableError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}; "
                                      "is `ray start --head` running there?") from exc


def worker_count(options: ClusterOptions, jobs: int) -> int:
    """``options.workers``, else as many as the cluster's CPUs (GPUs) allow at the resources per task."""
    ray = import_ray()
    resources = ray.cluster_resources()
    if options.gpus_per_task > 0 and resources.get("GPU", 0) < options.gpus_per_task:
        raise BackendUnavailableError(f"--gpus-per-task {options.gpus_per_task:g}, but the cluster has "
                                      f"{resources.get('GPU', 0):g} GPUs")
    if options.workers:
        return max(1, min(options.workers, jobs))
    fits = resources.get("CPU", 1) / max(options.cpus_per_task, 1e-9)
    if options.gpus_per_task > 0:
        fits = min(fits, resources.get("GPU", 0) / options.gpus_per_task)
    return max(1, min(int(fits), jobs))


def remove_leftovers(output: Path) -> None:
    """The temporary files a killed writer left beside ``output`` (``livestyle.files.temporary_path``)."""
    pattern = f".{glob.escape(output.stem)}.*.part{glob.escape(output.suffix)}"
    for path in output.parent.glob(pattern):
        path.unlink(missing_ok=True)


@dataclass
class _FileState:
    plan: FilePlan
    left: int
    outcomes: dict[int, dict] = field(default_factory=dict)
    started: float | None = None


class BatchRun:
    """One batch: ``run()`` does the ``plans`` (skipping none: the caller left out what is done)."""

    def __init__(self, plans: list[FilePlan], manifest: Manifest, payload: ModelPayload, settings: JobSettings,
                 options: ClusterOptions, *, say: Callable[[str], None], progress: bool = True):
        self.plans, self.manifest, self.payload, self.settings = plans, manifest, payload, settings
        self.options, self.say, self.show_progress = options, say, progress
        self.files = {id(p): _FileState(p, len(p.jobs)) for p in plans}
        self.results: dict[int, FileOutcome] = {}
        self.frames_done = 0  # the expected frames of the finished jobs
        self.finished: set[str] = set()  # their keys

    def run(self) -> BatchResult:
        from livestyle.io.progress import Progress

        ray = import_ray()
        started = time.perf_counter()
        jobs = deque((plan, i, job) for plan in self.plans for i, job in enumerate(plan.jobs))
        count = worker_count(self.options, len(jobs))
        threads = None if self.options.gpus_per_task > 0 else max(1, int(self.options.cpus_per_task))
        # Once into the object store; each node fetches it once. Inside a list, so that a worker fetches
        # it on its first job only (Ray keeps it while this run holds ``payload``).
        payload = [ray.put(self.payload)]
        for plan in self.plans:
            if plan.split:
                plan.parts_folder.mkdir(parents=True, exist_ok=True)
        board = ray.remote(ProgressBoard).options(num_cpus=0).remote()
        actor_class = ray.remote(FileWorker).options(
            num_cpus=self.options.cpus_per_task, num_gpus=self.options.gpus_per_task,
            max_restarts=-1, max_task_retries=self.options.retries)
        engine = self.settings.engine
        if self.options.gpus_per_task > 0 and engine.device in ("auto", "cpu"):
            engine = replace(engine, device="cuda")  # Ray gives each worker its own GPU(s)
        actors = [actor_class.remote(engine, threads) for _ in range(count)]
        idle, pending = list(actors), {}
        expected = {job.key: job.frames_expected for _, _, job in jobs}
        total = sum(expected.values())
        interrupted = False
        with Progress(total, desc="batch", unit="frame", enabled=self.show_progress) as bar:
            try:
                while jobs or pending:
                    while idle and jobs:
                        plan, i, job = jobs.popleft()
                        actor = idle.pop()
                        state = self.files[id(plan)]
                        state.started = state.started or time.perf_counter()
                        ref = actor.run.options(retry_exceptions=True).remote(job, self.settings, payload, board)
                        pending[ref] = (plan, i, job, actor)
                    done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S)
                    for ref in done:
                        plan, i, job, actor = pending.pop(ref)
                        idle.append(actor)  # restarted by Ray where its process died
                        self._finish_job(plan, i, job, self._outcome(ray, ref))
                    self._show(ray, board, bar, expected)
            except KeyboardInterrupt:
                interrupted = True
                self.say("interrupted: cancelling the running jobs (finished outputs are kept)")
                self._cancel(ray, pending, actors)
        for actor in actors:
            ray.kill(actor)
        for state in self.files.values():
            if id(state.plan) not in self.results:
                self._close_file(state, cancelled=True)
        files = [self.results[id(p)] for p in self.plans]
        return BatchResult(files, time.perf_counter() - started, count, interrupted)

    def _outcome(self, ray, ref) -> dict:
        """The job's outcome, or a failed one naming what Ray reported once the retries were spent."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayActorError as exc:
            why = "its worker process died (retries spent)"
            return {"status": "failed", "error": f"{why}: {str(exc).splitlines()[0]}"}
        except ray.exceptions.TaskCancelledError:
            return {"status": "cancelled"}
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            return {"status": "failed", "error": f"{type(cause).__name__}: {str(cause).splitlines()[-1]}"}

    def _finish_job(self, plan: FilePlan, index: int, job: Job, outcome: dict) -> None:
        state = self.files[id(plan)]
        state.outcomes[index] = outcome
        state.left -= 1
        self.frames_done += job.frames_expected
        self.finished.add(job.key)
        if state.left == 0:
            self._close_file(state)

    def _close_file(self, state: _FileState, cancelled: bool = False) -> None:
        """A file's jobs are over (or some failed): join its parts, record it, clean up."""
        plan = state.plan
        outcomes = [state.outcomes[i] for i in sorted(state.outcomes)]
        failed = [o for o in outcomes if o.get("status") == "failed"]
        done = not cancelled and not failed and len(outcomes) == len(plan.jobs) \
            and all(o.get("status") == "done" for o in outcomes)
        result = FileOutcome(str(plan.item.path), plan.item.output_relative.as_posix(),
                             "done" if done else "failed" if failed else "cancelled")
        result.frames = sum(o.get("frames", 0) for o in outcomes)
        result.worker = ",".join(dict.fromkeys(o["worker"] for o in outcomes if o.get("worker")))
        result.warning = "; ".join(o["warning"] for o in outcomes if o.get("warning"))
        result.error = failed[0]["error"] if failed else ""
        if done and plan.split:
            try:
                self._join(plan)
            except LivestyleError as exc:
                result.status, result.error = "failed", str(exc)
        if plan.split:
            shutil.rmtree(plan.parts_folder, ignore_errors=True)
            _remove_empty(plan.parts_folder.parent)
        remove_leftovers(plan.output)
        if state.started is not None:
            result.seconds = round(time.perf_counter() - state.started, 3)
            result.fps = round(result.frames / max(result.seconds, 1e-9), 2) if result.frames else 0.0
        self.results[id(plan)] = result
        if result.status != "cancelled":
            sha = next((o["input_sha256"] for o in outcomes if o.get("input_sha256")), "")
            self.manifest.record(plan.item, result, input_sha256=sha, model_sha256=self.payload.sha256,
                                 options=self.settings.to_dict())
            self.manifest.save()

    def _join(self, plan: FilePlan) -> None:
        from livestyle.io.segments import join_segments

        audio = plan.audio_stream if self.settings.encoding.audio else None
        join_segments([Path(job.output) for job in plan.jobs], plan.output,
                      audio_from=plan.item.path if audio is not None else None, audio_stream=audio,
                      inputs=(plan.item.path,))

    def _show(self, ray, board, bar, expected: dict[str, int]) -> None:
        if not self.show_progress:
            return
        running = ray.get(board.read.remote())
        bar.update_to(self.frames_done + sum(min(n, expected[k]) for k, n in running.items()
                                             if k not in self.finished))
        bar.set_postfix(f"{len(self.results)}/{len(self.plans)} files")

    def _cancel(self, ray, pending: dict, actors: list) -> None:
        """Ctrl-C: the running jobs are told to stop (they remove what they wrote); a second Ctrl-C, or
        ``CANCEL_WAIT_S``, kills the workers."""
        cancelled = False
        deadline = time.perf_counter() + CANCEL_WAIT_S
        try:
            while pending and time.perf_counter() < deadline:
                done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_S if cancelled else 0)
                if not cancelled:  # the jobs that finished meanwhile are collected first, then the rest told
                    for ref in set(pending) - set(done):
                        ray.cancel(ref)
                    cancelled = True
                for ref in done:
                    plan, i, job, _ = pending.pop(ref)
                    outcome = self._outcome(ray, ref)
                    if outcome.get("status") == "done":  # it finished before it heard: keep it
                        self._finish_job(plan, i, job, outcome)
        except KeyboardInterrupt:
            pass


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass


def run_batch(plans: list[FilePlan], manifest: Manifest, payload: ModelPayload, settings: JobSettings,
              options: ClusterOptions, *, say: Callable[[str], None], progress: bool = True) -> BatchResult:
    """Run ``plans`` on Ray (joined or started here, and stopped again if started here)."""
    handlers = _signal_handlers()
    started_here = connect(options.address, say)
    try:
        result = BatchRun(plans, manifest, payload, settings, options, say=say, progress=progress).run()
    finally:
        if started_here:
            import_ray().shutdown()
            _restore_signal_handlers(handlers)  # ray.init installs its own SIGTERM handler in this process
    return result


def _signal_handlers() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}


def _restore_signal_handlers(handlers: dict) -> None:
    for sig, handler in handlers.items():
        if handler is not None:  # None: set outside Python, cannot be put back from here
            signal.signal(sig, handler)
