"""What a batch does: the settings every file shares (as `video` and `image` take them), the model as
it travels to the workers, and the jobs: one per file, or one per part of a long video."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from livestyle.cluster import PARTS_FOLDER
from livestyle.cluster.inputs import InputFile
from livestyle.errors import InputError, LivestyleError
from livestyle.io.segments import Segment
from livestyle.io.sources import InferenceSize
from livestyle.pipeline.jobs import FrameEffects, VideoEncoding

WARM_UP_FRAMES = 8  # frames decoded before a part so the stabiliser starts it as a whole run would


@dataclass(frozen=True)
class EngineSettings:
    """``build_engine``'s options, as the `video` and `image` commands pass them."""

    backend: str = "auto"
    device: str = "auto"
    precision: str = "auto"
    tile: int | None = None
    infer_scale: float = 1.0
    upsample: str = "guided"
    compile: bool = False
    memory_budget: int | None = None


@dataclass(frozen=True)
class JobSettings:
    """Everything a file's output depends on besides the input and the model."""

    engine: EngineSettings = EngineSettings()
    effects: FrameEffects = FrameEffects()
    encoding: VideoEncoding = VideoEncoding()
    size: InferenceSize = InferenceSize()
    batch: int | None = None

    def to_dict(self) -> dict:
        """The options as the manifest records them (a changed one redoes the files)."""
        return {"engine": asdict(self.engine), "effects": asdict(self.effects), "encoding": asdict(self.encoding),
                "size": asdict(self.size), "batch": self.batch}


@dataclass(frozen=True)
class Job:
    """One task: ``input`` (a file, or ``segment`` of a video) through the model into ``output``."""

    key: str
    kind: str  # "video" | "image"
    input: str
    output: str
    segment: Segment | None = None
    frames_expected: int = 1
    hash_input: bool = True  # report the input's sha256 (one job of a split file does)


@dataclass
class FilePlan:
    """A file's jobs and where its output goes; a split video's parts are joined into ``output``."""

    item: InputFile
    output: Path
    jobs: list[Job]
    audio_stream: int | None = None

    @property
    def split(self) -> bool:
        return any(job.segment is not None for job in self.jobs)

    @property
    def parts_folder(self) -> Path:
        return self.output.parent / PARTS_FOLDER / self.output.name


@dataclass(frozen=True)
class ModelPayload:
    """The chosen model as it travels to the workers (once, through Ray's object store): safetensors
    bytes (no pickle), with the name, task and scale of ``ModelChoice``. ``sha256``: of the networks'
    architectures and weights (``weights_sha256``), the same whenever the model is the same."""

    name: str
    task: str
    scale: int
    model: bytes
    superres_model: bytes | None = None
    sha256: str = ""


def weights_sha256(*models) -> str:
    """sha256 of networks' architectures and weights, in a fixed order (safetensors files of the same
    model can differ in their header's key order, so their bytes are not hashed)."""
    digest = hashlib.sha256()
    for model in models:
        config = getattr(model, "config", None)
        digest.update(json.dumps(config.to_dict() if config is not None else type(model).__name__,
                                 sort_keys=True).encode())
        for name, tensor in sorted(model.state_dict().items()):
            tensor = tensor.detach().float().contiguous().cpu()
            digest.update(f"{name}:{list(tensor.shape)}".encode())
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def model_payload(choice) -> ModelPayload:
    """A ``ModelChoice`` as a ``ModelPayload`` (ONNX files cannot travel: import them first)."""
    from livestyle.zoo.community import OnnxFileNet
    from livestyle.zoo.modelfile import model_bytes

    if isinstance(choice.model, OnnxFileNet):
        raise InputError("livestyle batch runs PyTorch models; make the ONNX file a catalog style first "
                         "(`livestyle import FILE --name NAME`, then --style NAME)")
    networks = [m for m in (choice.model, choice.superres_model) if m is not None]
    second = None if choice.superres_model is None else model_bytes(choice.superres_model)
    return ModelPayload(choice.name, choice.task, choice.scale, model_bytes(choice.model), second,
                        weights_sha256(*networks))


def load_payload(payload: ModelPayload):
    """The ``ModelChoice`` a ``ModelPayload`` holds."""
    from livestyle.zoo.choice import ModelChoice
    from livestyle.zoo.modelfile import load_model_bytes

    model, _ = load_model_bytes(payload.model)
    second = None if payload.superres_model is None else load_model_bytes(payload.superres_model)[0]
    return ModelChoice(model, payload.name, payload.task, payload.scale, second)


def video_frames(path: str | os.PathLike) -> tuple[int, int | None]:
    """(frames the container states or its duration implies, index of its audio stream); (1, None)
    where the file does not open (its task reports why)."""
    from livestyle.io.sources import VideoFileSource

    try:
        source = VideoFileSource(path)
    except LivestyleError:
        return 1, None
    try:
        return source.frames_expected or 1, source.audio_stream_index
    finally:
        source.close()


def plan_file(item: InputFile, outdir: Path, settings: JobSettings, split_seconds: float | None) -> FilePlan:
    """The jobs of one file: one, or one per part where a video is longer than ``split_seconds`` and
    has keyframes to cut at."""
    from livestyle.io.segments import keyframe_index, plan_segments

    output = outdir / item.output_relative
    key = item.output_relative.as_posix()
    if item.kind == "image":
        return FilePlan(item, output, [Job(key, "image", str(item.path), str(output))])
    frames, audio = video_frames(item.path)
    whole = FilePlan(item, output, [Job(key, "video", str(item.path), str(output), frames_expected=frames)], audio)
    if split_seconds is None:
        return whole
    try:
        index = keyframe_index(item.path)
    except LivestyleError:
        return whole  # a damaged or raw file runs whole, and its task says what is wrong
    warm = WARM_UP_FRAMES if settings.effects.stabilize else 0
    segments = plan_segments(index, split_seconds, warm_up_frames=warm)
    if len(segments) < 2:
        return whole
    plan = replace(whole, jobs=[])
    for segment in segments:
        plan.jobs.append(Job(f"{key}#{segment.index}", "video", str(item.path),
                             str(plan.parts_folder / f"{segment.index:05d}.mp4"), segment,
                             max(1, index.count(segment)), hash_input=segment.index == 0))
    return plan


def settle_cpu_engine(choice, settings: JobSettings, shape: tuple[int, ...], progress=None) -> JobSettings:
    """``auto`` backend or precision on the CPU, settled once here: the engine `video` would choose for
    frames of ``shape`` (N, 3, H, W) on this machine (timed, or from the cache), so every worker runs
    the same backend and precision, and its outputs equal those of `livestyle video` here."""
    from livestyle.engines.cpu_choice import MeasuredCpuEngine

    engine = settings.engine
    if engine.backend != "auto" or engine.tile or engine.compile:
        return settings  # a named backend runs "auto" precision as FP32; --tile and --compile choose by rule
    measured = MeasuredCpuEngine(choice.model, precision=engine.precision, progress=progress)
    measured.prepare(shape)
    winner = {c.label: c for c in measured.candidates}[measured.choice["winner"]]
    return replace(settings, engine=replace(engine, backend=winner.backend, precision=winner.precision))


def first_frame_size(items: list[InputFile], size: InferenceSize) -> tuple[int, int] | None:
    """(height, width) of the first input's first frame as the network sees it (the first input that
    decodes; videos resized by ``size``)."""
    from livestyle.io.images import read_image
    from livestyle.io.sources import open_video_source

    for item in items:
        try:
            if item.kind == "image":
                return read_image(item.path).rgb.shape[:2]  # stills run at their own size, as in `image`
            source = open_video_source(item.path, size=size)
            try:
                frame = source.read()
            finally:
                source.close()
            if frame is not None:
                return frame.image.shape[:2]
        except LivestyleError:
            continue
    return None
