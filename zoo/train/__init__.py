"""The shared training engine; see :mod:`zoo.train.engine`."""

from zoo.train.engine import (
    EMA,
    Interrupted,
    Phase,
    TrainOptions,
    TrainSamples,
    TrainTask,
    enable_grad_checkpointing,
    fit,
    split_batch,
)

__all__ = ["EMA", "Interrupted", "Phase", "TrainOptions", "TrainSamples", "TrainTask", "enable_grad_checkpointing", "fit", "split_batch"]
