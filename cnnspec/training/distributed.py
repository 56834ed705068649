"""torchrun: one training process per GPU (or per CPU slot), one run.

``torchrun --nproc-per-node N -m cnnspec compile SPEC --train`` starts N processes and sets
``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT`` in each (https://pytorch.org/docs/stable/elastic/run.html). With
``WORLD_SIZE`` > 1 a run joins the process group (NCCL on GPUs, gloo on CPUs), wraps the
network in ``DistributedDataParallel`` (gradients averaged over the processes after every
backward pass) and splits every global batch of ``batch`` images into ``world_size``
per-process batches (:class:`~cnnspec.data.images.EpochBatches`). Loss, accuracy and
validation are summed over the processes; only rank 0 prints and writes the run folder.

Without torchrun (``WORLD_SIZE`` unset or 1) :data:`SINGLE` stands for the one process and
nothing here touches ``torch.distributed``.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import CnnSpecError

TIMEOUT = datetime.timedelta(minutes=30)
"""How long a collective waits for the other processes (torch's default for NCCL/gloo)."""


@dataclass(frozen=True)
class Group:
    """This process's place in a torchrun group: ``world_size`` processes in all, numbered
    by ``rank``; ``local_rank`` among the ``local_world_size`` on this machine (its GPU)."""

    world_size: int = 1
    rank: int = 0
    local_rank: int = 0
    local_world_size: int = 1
    backend: str | None = None
    """``nccl`` or ``gloo`` once joined; None for a single process."""

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that prints and writes the run folder."""
        return self.rank == 0

    def per_process_batch(self, batch: int, resuming: bool = False) -> int:
        """``batch`` (the global batch) / ``world_size``.

        Raises:
            CnnSpecError: ``batch`` is not a multiple of the world size (the message names
                the batches that would split, or, when ``resuming`` a run whose batch is
                fixed, the numbers of processes that would).

        >>> Group(world_size=4).per_process_batch(256)
        64
        """
        if batch % self.world_size == 0:
            return batch // self.world_size
        head = (f"batch {batch} is the global batch and must split evenly over the "
                f"{self.world_size} processes of this torchrun group")
        if resuming:
            counts = [n for n in range(1, min(batch, 64) + 1) if batch % n == 0]
            raise CnnSpecError(f"{head}; this run's batch is fixed, so resume it with "
                               f"--nproc-per-node (x nodes) = {', '.join(map(str, counts))}")
        lower = batch - batch % self.world_size
        if lower == 0:
            raise CnnSpecError(f"{head}; use a batch of at least {self.world_size}, a "
                               f"multiple of {self.world_size}")
        raise CnnSpecError(f"{head}; use batch {lower} or {lower + self.world_size}")

    def all_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over the processes (in place; itself for a single process)."""
        if self.distributed:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def minimum(self, value: torch.Tensor) -> int:
        """The smallest of the processes' ``value`` (0-dim integer; a collective: every
        process must call it at the same point)."""
        if self.distributed:
            torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MIN)
        return int(value)

    def broadcast(self, value):
        """Rank 0's ``value`` (any picklable object made by cnnspec itself) in every process."""
        if not self.distributed:
            return value
        box = [value]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    @contextlib.contextmanager
    def local_main_first(self):
        """Run the body in the first process of each machine, then in the others (so one
        process per machine decodes the image cache the others then read)."""
        if self.local_rank != 0:
            self.barrier()
        yield
        if self.local_rank == 0:
            self.barrier()

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This process's contiguous share of ``indices`` (sizes differ by at most one)."""
        return torch.tensor_split(torch.as_tensor(indices), self.world_size)[self.rank]

    def record(self, batch: int) -> dict:
        """What run.json says about the group."""
        return {"world_size": self.world_size, "backend": self.backend, "global_batch": batch,
                "batch_per_process": batch // self.world_size}


SINGLE = Group()


def from_env() -> Group:
    """The group torchrun's environment describes (:data:`SINGLE` without torchrun).

    Raises:
        CnnSpecError: ``WORLD_SIZE`` is set above 1 but the rest of torchrun's variables
            are missing or not numbers (cnnspec was not started by torchrun).
    """
    env = os.environ
    try:
        world = int(env.get("WORLD_SIZE", "1") or 1)
        if world <= 1:
            return SINGLE
        missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not env.get(v)]
        if missing:
            raise CnnSpecError(f"WORLD_SIZE={world} is set but {', '.join(missing)} "
                               f"{'is' if len(missing) == 1 else 'are'} not: start many "
                               "processes with torchrun (torchrun --nproc-per-node N -m "
                               "cnnspec ...), or unset WORLD_SIZE for one")
        rank = int(env["RANK"])
        local = int(env.get("LOCAL_RANK", str(rank)))
        return Group(world, rank, local, int(env.get("LOCAL_WORLD_SIZE", str(world))))
    except ValueError:
        values = {v: env.get(v) for v in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")}
        raise CnnSpecError(f"torchrun's environment variables must be whole numbers: "
                           f"{', '.join(f'{k}={v}' for k, v in values.items() if v is not None)}"
                           ) from None


def join(device: str | None, say=None) -> tuple[Group, str | None]:
    """Join torchrun's process group, if there is one, and the device this process trains on
    (GPU ``LOCAL_RANK`` under torchrun with CUDA; the CPU with ``--device cpu`` or no GPU).

    Raises:
        CnnSpecError: ``--device cuda:N`` under torchrun (each process takes GPU LOCAL_RANK),
            or fewer GPUs than processes on this machine.
    """
    group = from_env()
    if not group.distributed:
        return group, device
    if say is not None and group.main:  # the others may not have started yet
        say(f"joining a torchrun group of {group.world_size} processes at "
            f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']} (waiting at most "
            f"{TIMEOUT.seconds // 60} minutes for the others)")
    if device and device.startswith("cuda:"):
        raise CnnSpecError(f"--device {device}: under torchrun each process trains on GPU "
                           "LOCAL_RANK; write --device cuda (or leave it out)")
    on_gpu = device != "cpu" and torch.cuda.is_available()
    if device == "cuda" and not on_gpu:
        raise CnnSpecError("--device cuda: no CUDA GPU is available here; use --device cpu")
    if on_gpu:
        if group.local_world_size > torch.cuda.device_count():
            raise CnnSpecError(f"torchrun started {group.local_world_size} processes on this "
                               f"machine but it has {torch.cuda.device_count()} GPU(s); use "
                               "--nproc-per-node with at most that many, or --device cpu")
        torch.cuda.set_device(group.local_rank)
        device = f"cuda:{group.local_rank}"
    else:
        device = "cpu"
    backend = "nccl" if on_gpu else "gloo"
    if not torch.distributed.is_initialized():  # (a script may have joined one itself)
        torch.distributed.init_process_group(
            backend, timeout=TIMEOUT,
            device_id=torch.device(device) if on_gpu else None)
        _JOINED.add(True)
    else:
        backend = torch.distributed.get_backend()
    return Group(group.world_size, group.rank, group.local_rank, group.local_world_size,
                 backend), device


_JOINED: set = set()
"""Holds True while a process group :func:`join` made is open."""


def leave(group: Group) -> None:
    """Leave the process group :func:`join` made (at the end of a run, whatever happened);
    a group the caller made is left to the caller."""
    if group.distributed and _JOINED and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
        _JOINED.clear()


def wrap(module: nn.Module, group: Group, device: torch.device) -> nn.Module:
    """``module`` in ``DistributedDataParallel`` for a group; itself for a single process.
    Only parameters that train now take part (a transfer's frozen layers are left out; the
    wrapper is made again when ``unfreeze at epoch E`` changes that)."""
    if not group.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda"
                                   else None)


def sync_batchnorm(model: nn.Module, group: Group, device: torch.device) -> bool:
    """Turn the batch norms of ``model`` into ``nn.SyncBatchNorm`` (statistics over the
    global batch) in a group; returns whether it did.

    Raises:
        CnnSpecError: on the CPU (torch's SyncBatchNorm runs on GPUs only).
    """
    if not group.distributed:
        return False
    if device.type != "cuda":
        raise CnnSpecError("sync_batchnorm on: torch's SyncBatchNorm runs on GPUs only; "
                           "write sync_batchnorm off to train on CPUs (each process then "
                           "normalises over its own batch)")
    nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return True
