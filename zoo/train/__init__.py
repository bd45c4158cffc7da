"""The shared training engine; see :mod:`zoo.train.engine`."""

from zoo.train.engine import EMA, Phase, TrainOptions, TrainSamples, TrainTask, fit, split_batch

__all__ = ["EMA", "Phase", "TrainOptions", "TrainSamples", "TrainTask", "fit", "split_batch"]
