"""Multi-process training through torch.distributed (launched by torchrun): each process takes its shard
of every epoch's order (see Batches), gradients are averaged by DistributedDataParallel, rank 0 writes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
import torch.distributed as tdist


@dataclass
class World:
    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    started_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup() -> World:
    """Join the process group when started by torchrun (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPU."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    started = False
    if not tdist.is_initialized():
        tdist.init_process_group(backend)
        started = True
    return World(rank, size, device, started)


def barrier(world: World) -> None:
    if world.size > 1:
        tdist.barrier()


def cleanup(world: World) -> None:
    if world.started_here and tdist.is_initialized():
        tdist.destroy_process_group()
