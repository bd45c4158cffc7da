"""Exponential moving average of the trained weights, and the weights a checkpoint exports."""

from __future__ import annotations

from typing import Any

import torch

from zoo.train import fsdp


class EMA:
    """Exponential moving average of a module's floating-point parameters and buffers."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        for k, v in model.state_dict().items():
            if k in self.shadow:
                self.shadow[k].lerp_(v.detach().float(), 1.0 - self.decay)

    def apply_to(self, state: dict[str, torch.Tensor], shadow: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """``state`` with the averaged tensors in place of the raw ones (``shadow``: the
        averages to use, e.g. gathered from FSDP shards; default: this EMA's own)."""
        shadow = self.shadow if shadow is None else shadow
        return {k: (shadow[k].to(v.dtype) if k in shadow else v) for k, v in state.items()}

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k, v in state.items():
            self.shadow[k].copy_(v)


def export_state(task: Any, ema: EMA | None, sharded: bool = False, keep: bool = True) -> dict[str, torch.Tensor]:
    state = {k: v.detach().cpu() if not sharded else v for k, v in task.model.state_dict().items()}
    if sharded:
        state = fsdp.gather(state, keep)
        shadow = fsdp.gather(ema.shadow, keep) if ema is not None else None
        if not keep:
            return {}
        return ema.apply_to(state, shadow) if ema is not None else state
    return ema.apply_to(state) if ema is not None else state
