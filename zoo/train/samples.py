"""Training samples: a seeded, resumable stream of (image, mask) pairs, and how the global
batch splits into micro-batches."""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterator

import torch

from zoo.errors import ZooError, plain_warnings
from zoo.masks import make_mask
from zoo.spec import TrainContext
from zoo.train.task import TrainOptions


class TrainSamples(torch.utils.data.Dataset):
    """Sample position ``p`` (0, 1, 2, ...) -> image of a seeded per-epoch permutation
    (with its random crop / flip drawn for ``p`` by the dataset's ``draw(index, key)``,
    when it has one) plus mask ``p`` of the training mask kind. Fully determined by
    (seed, p), so a run can resume at any position."""

    def __init__(self, data: torch.utils.data.Dataset, masks: Any, seed: int) -> None:
        self.data, self.masks, self.seed = data, masks, seed
        self.n = len(data)  # type: ignore[arg-type]
        if self.n == 0:
            raise ZooError("the training dataset is empty")
        self._perm: dict[int, torch.Tensor] = {}

    def _index(self, position: int) -> int:
        epoch, offset = divmod(position, self.n)
        if epoch not in self._perm:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = {epoch: torch.randperm(self.n, generator=g)}
        return int(self._perm[epoch][offset])

    def __getitem__(self, position: int) -> dict:
        index = self._index(position)
        # a dataset with training augmentation draws its crop / flip for this position:
        # every epoch sees new ones, and a resumed run the same ones
        draw = getattr(self.data, "draw", None)
        item = draw(index, position) if callable(draw) else self.data[index]
        image = item["image"]
        mask = make_mask(self.masks, image.shape[1], image.shape[2], self.seed, position)
        return {"image": image, "mask": mask}


class _Positions(torch.utils.data.Sampler):
    """Positions of this process's share of each step, from ``first`` on: step s takes
    ``first + s * batch + rank * share + [0, share)``."""

    def __init__(self, first: int, batch: int, rank: int, share: int) -> None:
        self.first, self.batch, self.rank, self.share = first, batch, rank, share

    def __iter__(self) -> Iterator[int]:
        for s in itertools.count():
            base = self.first + s * self.batch + self.rank * self.share
            yield from range(base, base + self.share)


def batches(ctx: TrainContext, micro: int, start: int = 0, num_workers: int = 0) -> Iterator[dict]:
    """Batches of ``micro`` consecutive sample positions from ``start`` (one process)."""
    samples = TrainSamples(ctx.data, ctx.masks, ctx.seed)
    loader = torch.utils.data.DataLoader(samples, batch_size=micro, sampler=_Positions(start, micro, 0, micro), num_workers=num_workers,
                                         worker_init_fn=plain_warnings)
    return iter(loader)


def split_batch(batch_size: int, options: TrainOptions, processes: int = 1) -> tuple[int, int]:
    """Global batch -> (micro-batch size, micro-batches per step) for one process."""
    if batch_size % processes:
        raise ZooError(f"--batch-size {batch_size} is not divisible by the {processes} processes")
    share = batch_size // processes
    if isinstance(options.micro_batch, int):
        micro = min(options.micro_batch, share)
        return micro, math.ceil(share / micro)
    if share % options.grad_accum:
        raise ZooError(f"--batch-size {batch_size} ({share} per process) is not divisible by --grad-accum {options.grad_accum}")
    return share // options.grad_accum, options.grad_accum
