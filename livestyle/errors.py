"""Errors the user can fix; the CLI turns each into one line on stderr and a non-zero exit."""


class LivestyleError(Exception):
    """Base class: a failure with a message meant for the user."""


class InputError(LivestyleError):
    """An input file, source or value is missing, unreadable, corrupt or out of range."""


class OutputError(LivestyleError):
    """An output path cannot be written (or would overwrite the input)."""


class UnknownModelError(LivestyleError):
    """A style or model name that the catalog does not hold."""


class WeightsError(LivestyleError):
    """A weights file is missing, corrupt, or fails its sha256 check."""


class LossNetWeightsError(WeightsError):
    """Loss-network weights cannot be found or downloaded."""


class BackendUnavailableError(LivestyleError):
    """An inference backend (or device) was asked for but is not installed or present."""


class SourceError(LivestyleError):
    """A capture source (camera, stream, file) cannot be opened or read."""


class TrainingError(LivestyleError):
    """A training run cannot start, continue or resume as asked (data set, checkpoint, diverging loss)."""


class ExportError(LivestyleError):
    """A model cannot be exported (ONNX) or built into an engine (TensorRT)."""


class EngineOptionError(LivestyleError):
    """An engine option has a value the engine cannot use (e.g. an inference scale outside (0, 1])."""


class InsufficientMemoryError(LivestyleError):
    """A computation needs more memory (GPU or CPU) than is free; a smaller size may fit."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a failed allocation: torch's OutOfMemoryError (CUDA), MemoryError, or a
    library's runtime error that says so (torch on the CPU, ONNX Runtime's bad_alloc)."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    from_a_library = isinstance(exc, RuntimeError) or type(exc).__module__.startswith("onnxruntime")
    text = str(exc).lower()
    return from_a_library and any(word in text for word in ("memory", "allocat", "bad_alloc"))

