"""DDP helpers: one process per device, launched by ``torchrun``, detected from its environment.

``torchrun`` sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; a plain process has
none of them and runs alone. Gloo carries CPU tensors, NCCL CUDA tensors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a (possibly single-process) run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when several processes train together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Only the main process writes files and draws the dashboard."""
        return self.rank == 0


def context_from_env() -> DistContext:
    """The rank, world size and local rank that ``torchrun`` put in the environment."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    return DistContext(
        rank=int(os.environ["RANK"]),
        world_size=world_size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def init_process_group(context: DistContext, device: torch.device) -> None:
    """Join the process group (NCCL for CUDA, gloo otherwise) unless running alone."""
    import torch.distributed as dist

    if context.enabled and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL needs each process bound to its own GPU
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=context.rank, world_size=context.world_size)


def destroy_process_group(context: DistContext) -> None:
    """Leave the process group, if this process joined one."""
    import torch.distributed as dist

    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Sum ``tensor`` over all processes in place (no-op alone) and return it.

    NCCL reduces CUDA tensors only, so a CPU tensor makes a round trip through this process's
    GPU there; gloo reduces it where it is.
    """
    if context.enabled:
        import torch.distributed as dist

        if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
            on_gpu = tensor.to(torch.device("cuda", torch.cuda.current_device()))
            dist.all_reduce(on_gpu, op=dist.ReduceOp.SUM)
            tensor.copy_(on_gpu.cpu())
        else:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(context: DistContext) -> None:
    """Wait until every process gets here (no-op alone)."""
    if context.enabled:
        import torch.distributed as dist

        dist.barrier()


def shard(items: list, context: DistContext) -> list:
    """This process's share of ``items``: every world_size-th one, from its rank."""
    return items[context.rank :: context.world_size]
