"""The shared training engine (one file per concern):

* :mod:`zoo.train.task` — what a plugin gives the engine: ``TrainTask``, ``Phase``, ``TrainOptions``;
* :mod:`zoo.train.engine` — :func:`fit` and the step loop;
* :mod:`zoo.train.steps` — one optimizer step: micro-batches, accumulation, mixed precision, clipping;
* :mod:`zoo.train.checkpointing` / :mod:`zoo.train.state` — save and exact resume / checkpoint files;
* :mod:`zoo.train.faults` — stop signals, out-of-memory steps, FSDP misuse;
* :mod:`zoo.train.validation` / :mod:`zoo.train.watch` — validation metrics, sample grids, logs;
* :mod:`zoo.train.samples`, :mod:`zoo.train.ema`, :mod:`zoo.train.dist`, :mod:`zoo.train.fsdp`,
  :mod:`zoo.train.memory`, :mod:`zoo.train.launch` — data stream, EMA, processes, sharding,
  memory probing, ``--devices N``;
* :mod:`zoo.train.events` — ``step_listener(fn)``: a callback after every step (``zoo bench`` times steps with it).
"""

from zoo.train.ema import EMA
from zoo.train.engine import fit
from zoo.train.events import StepEvent, step_listener
from zoo.train.samples import TrainSamples, split_batch
from zoo.train.task import Interrupted, Phase, TrainOptions, TrainTask, enable_grad_checkpointing, options_dict

__all__ = ["EMA", "Interrupted", "Phase", "StepEvent", "TrainOptions", "TrainSamples", "TrainTask", "enable_grad_checkpointing", "fit", "options_dict", "split_batch", "step_listener"]
