"""Training on many processes (GPUs, or CPUs with gloo) with ``torch.distributed``, as torchrun starts them.

`torchrun --nproc_per_node N -m livestyle train style|superres …` starts N processes (``--nnodes``
for clusters); each reads its rank from torchrun's environment. Every rank draws the same global
batch from the shared generator and trains on its slice of it under DistributedDataParallel, which
averages the gradients: the losses are means over the batch and the slices are equal, so the update
is the one-process update on the whole batch, and the data order does not depend on N (a resumed run
continues identically, whatever N it resumes with). Rank 0 alone writes checkpoints, previews, the
model and its entry, and shows progress.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from livestyle.errors import TrainingError

ENV_RANK, ENV_WORLD_SIZE, ENV_LOCAL_RANK = "RANK", "WORLD_SIZE", "LOCAL_RANK"  # set by torchrun


@dataclass(frozen=True)
class Ranks:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def ranks() -> Ranks:
    """This process's ranks: those of the process group when one runs, else torchrun's environment."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return Ranks(torch.distributed.get_rank(), torch.distributed.get_world_size(),
                     int(os.environ.get(ENV_LOCAL_RANK, 0)))
    try:
        return Ranks(int(os.environ.get(ENV_RANK, 0)), int(os.environ.get(ENV_WORLD_SIZE, 1)),
                     int(os.environ.get(ENV_LOCAL_RANK, 0)))
    except ValueError as exc:
        raise TrainingError(f"torchrun's environment is not readable: {exc}") from exc


def start(device: torch.device) -> torch.device:
    """Join the process group where torchrun started several processes (nccl on CUDA, gloo on the
    CPU); returns this rank's device (its own GPU: cuda:LOCAL_RANK)."""
    place = ranks()
    if not place.active:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", place.local_rank)
        torch.cuda.set_device(device)
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    """Leave the process group (after the last collective call)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def check_batch(batch_size: int, place: Ranks) -> None:
    if batch_size % place.world_size:
        raise TrainingError(f"--batch-size {batch_size} does not split evenly over {place.world_size} processes; "
                            f"give a multiple of {place.world_size}")


def shard(batch, place: Ranks):
    """This rank's slice of a global batch: a tensor (N, …), or a tuple of them (SR: low, high)."""
    if not place.active:
        return batch
    if isinstance(batch, tuple):
        return tuple(shard(part, place) for part in batch)
    share = batch.shape[0] // place.world_size
    return batch[place.rank * share:(place.rank + 1) * share]


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` under DistributedDataParallel (gradients averaged over the ranks in the backward pass).

    Batch norms (the paper's SR net, ``--norm batch``) must see the whole batch's statistics, as one
    process would: on CUDA they become SyncBatchNorm (in place, same parameters); torch cannot
    synchronise them between CPU processes, so there such a model is refused.
    """
    from torch.nn.parallel import DistributedDataParallel

    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        if device.type != "cuda":
            raise TrainingError("a network with batch norms trains on several processes only on CUDA "
                                "(SyncBatchNorm); on CPUs train it in one process, or with --norm none")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def mean_over_ranks(values: torch.Tensor, place: Ranks) -> torch.Tensor:
    """The mean of ``values`` over the ranks (each rank's loss on its slice → the loss on the whole batch)."""
    if not place.active:
        return values
    values = values.detach().float().clone()
    torch.distributed.all_reduce(values)  # a sum: gloo has no average
    return values / place.world_size


def any_rank(flags: list[bool], place: Ranks, device: torch.device) -> list[bool]:
    """Each flag set where any rank sets it: all ranks stop at the same step (a signal or a time limit)."""
    if not place.active:
        return flags
    tensor = torch.tensor([float(f) for f in flags], device=device)  # nccl reduces GPU tensors only
    torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.MAX)
    return [bool(v) for v in tensor.tolist()]


def from_main(value, place: Ranks):
    """Rank 0's ``value`` on every rank (a choice made once, e.g. by timing)."""
    if not place.active:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def barrier(place: Ranks) -> None:
    if place.active:
        torch.distributed.barrier()
