"""Which network a catalog record means: a (task, family) → builder table.

A record's ``arch`` holds the constructor arguments of one family's config; ``arch["family"]``
names the family where it is not the task's own (``pytorch_examples`` for imported styles). New
families register a builder with :func:`register_model`, in the manner of torchvision's
``models/_api.py``.
"""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from livestyle.errors import WeightsError
from livestyle.models.community import FAMILY as PYTORCH_EXAMPLES, CommunityNetConfig, CommunityTransformNet
from livestyle.models.subpixel_sr import FAMILY as SUBPIXEL, SubpixelSRNet, SubpixelSRNetConfig
from livestyle.models.superres import SRNet, SRNetConfig
from livestyle.models.transform import TransformNet, TransformNetConfig

DEFAULT_FAMILY = {"style": "transform", "superres": "srnet"}  # a record without "family" means these
_BUILDERS: dict[tuple[str, str], Callable[[dict], nn.Module]] = {}


def register_model(task: str, family: str):
    """Decorator: ``builder(arch) → nn.Module`` makes the networks of ``family`` for ``task``."""
    def register(builder: Callable[[dict], nn.Module]) -> Callable[[dict], nn.Module]:
        _BUILDERS[(task, family)] = builder
        return builder
    return register


def list_models() -> list[tuple[str, str]]:
    """The registered (task, family) pairs."""
    return sorted(_BUILDERS)


def build_model(task: str, arch: dict) -> nn.Module:
    """A fresh network for ``task`` with architecture ``arch`` (its config's fields)."""
    family = arch.get("family", DEFAULT_FAMILY.get(task))
    builder = _BUILDERS.get((task, family))
    if builder is None:
        known = ", ".join(f"{t}/{f}" for t, f in list_models())
        raise WeightsError(f"unknown model task/family {task!r}/{family!r}; known: {known}")
    try:
        return builder(arch)
    except (TypeError, ValueError) as exc:
        raise WeightsError(f"bad architecture {arch} for task {task!r}: {exc}") from exc


def task_of(model: nn.Module) -> str:
    """The catalog task a network serves: "superres" for SR nets, else "style"."""
    return "superres" if isinstance(model, (SRNet, SubpixelSRNet)) else "style"


def register_config_family(task: str, family: str, network: type[nn.Module], config: type) -> None:
    """Register a family whose network takes one config built from the record's ``arch``."""
    register_model(task, family)(lambda arch: network(config(**arch)))


register_config_family("style", "transform", TransformNet, TransformNetConfig)
register_config_family("style", PYTORCH_EXAMPLES, CommunityTransformNet, CommunityNetConfig)
register_config_family("superres", "srnet", SRNet, SRNetConfig)
register_config_family("superres", SUBPIXEL, SubpixelSRNet, SubpixelSRNetConfig)
