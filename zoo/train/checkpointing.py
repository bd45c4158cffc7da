"""Saving and resuming a run: the whole training state (model, EMA, optimizers, schedulers,
loss scalers, RNG streams, counters), full tensors also under FSDP, and the exported weights
with zoo checkpoint metadata. File layout and atomic writes: :mod:`zoo.train.state`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from zoo import __version__
from zoo.checkpoint import CheckpointMeta, load_state_strict
from zoo.config import config_to_dict
from zoo.errors import ZooError
from zoo.provenance import checkpoint_meta
from zoo.train import dist, fsdp, state as ckpt
from zoo.train.ema import export_state
from zoo.train.init import init_provenance


class CheckpointMixin:
    """The trainer's save / resume (mixed into :class:`zoo.train.engine._Trainer`)."""

    # ---- checkpoint state ----
    def training_state(self) -> dict[str, Any]:
        """The whole training state with full tensors (collective: every process calls it;
        under FSDP it gathers the shards)."""
        rng = dist.gather_objects(ckpt.rng_state())
        state = {
            "format": 1,
            "step": self.step,
            "samples_seen": self.samples_seen,
            "batch_size": self.ctx.batch_size,
            "world_size": self.world,
            "seed": self.ctx.seed,
            "method": self.ctx.method,
            "nonfinite_streak": self.nonfinite_streak,
            "best": self.best,
            "model": {k: v for k, v in self.task.model.state_dict().items()},
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizers": {n: o.state_dict() for n, o in self.optimizers.items()},
            "schedulers": {n: s.state_dict() for n, s in self.schedulers.items()},
            "scalers": {n: s.state_dict() for n, s in self.scalers.items()},
            "rng": rng,
            "extra": self.task.extra_state() or {},
            "strategy": "fsdp" if self.sharded else "ddp",
            "budget": self.clock.state(),  # seconds spent so far (all runs of this folder), --time-budget
        }
        return fsdp.gather(state, keep=self.main) if self.sharded else state

    def load(self, path: Path) -> None:
        st = ckpt.read_state(path)
        if st.get("method") != self.ctx.method:
            raise ZooError(f"--resume {path}: a checkpoint of method {st.get('method')!r}, not {self.ctx.method!r}")
        model_state = st["model"]
        if self.sharded:  # checkpoints hold full tensors: cut this process's shards
            model_state = fsdp.shard_state(model_state, self.task.model.state_dict())
        load_state_strict(self.task.model, model_state, what=f"--resume {path}")
        if (self.ema is None) != (st["ema"] is None):
            raise ZooError(f"--resume {path}: the checkpoint {'has' if st['ema'] is not None else 'has no'} EMA but the task {'has' if self.ema else 'has no'} ema_decay")
        if self.ema is not None:
            self.ema.load_state_dict(fsdp.shard_state(st["ema"], self.ema.shadow) if self.sharded else st["ema"])
        for name, opt in self.optimizers.items():
            if name not in st["optimizers"]:
                raise ZooError(f"--resume {path}: no state for optimizer {name!r} (has {sorted(st['optimizers'])})")
            opt.load_state_dict(st["optimizers"][name])
            if self.sharded:
                fsdp.shard_optimizer_state(opt)
        for name, sched in self.schedulers.items():
            if name in st["schedulers"]:
                sched.load_state_dict(st["schedulers"][name])
        for name, scaler in self.scalers.items():
            saved = st["scalers"].get(name) or {}
            if saved and scaler.is_enabled():
                scaler.load_state_dict(saved)
        self.task.load_extra_state(st.get("extra") or {})
        self.step = int(st["step"])
        self.samples_seen = int(st["samples_seen"])
        self.nonfinite_streak = int(st.get("nonfinite_streak", 0))
        self.best = st.get("best") or {}
        self.clock.load(st.get("budget") or {})
        rngs = st.get("rng") or []
        if self.rank < len(rngs) and st.get("world_size") == self.world:
            ckpt.set_rng_state(rngs[self.rank])
        else:  # other process count: RNG streams cannot continue exactly; reseed deterministically
            torch.manual_seed(self.ctx.seed + 1_000 * self.rank + 7 * self.step)
        self.log.write({"event": "resume", "step": self.step, "from": str(path), "samples_seen": self.samples_seen})

    def export(self) -> dict[str, torch.Tensor]:
        """The weights the checkpoint holds (EMA if kept), full tensors on the CPU
        (collective under FSDP, where only process 0 gets the tensors)."""
        return export_state(self.task, self.ema, self.sharded, keep=self.main)

    def exported(self, state: dict[str, Any]) -> dict[str, torch.Tensor]:
        """What :meth:`export` returns, taken from an already gathered training state."""
        return self.ema.apply_to(state["model"], state["ema"]) if self.ema is not None else state["model"]

    def export_meta(self, provenance: dict[str, Any] | None = None) -> dict[str, str]:
        """Zoo checkpoint metadata for the exported weights (minimal for a method that is
        not registered, e.g. a benchmark's or a test's task)."""
        prov = {"kind": "trained", "data": self.ctx.data_name, "seed": self.ctx.seed, **(provenance or {})}
        init = getattr(self.ctx, "init_provenance", None) or (init_provenance(self.options.init) if self.options.init else None)
        if init:  # fine-tuned (also after --resume of a fine-tuning run): where the weights started
            prov = {**prov, "kind": "fine-tuned", "init": init}
        try:
            meta = checkpoint_meta(self.ctx.method, self.ctx.config, self.ctx.preset, self.step, prov)
        except ZooError:
            try:
                config = config_to_dict(self.ctx.config)
            except Exception:  # noqa: BLE001 - not a dataclass
                config = {}
            meta = CheckpointMeta(method=self.ctx.method, config=config, preset=self.ctx.preset, step=self.step, provenance=prov)
        meta.zoo_version = __version__
        return meta.to_metadata()

    def save(self, reason: str) -> Path | None:
        """Checkpoint now (all processes take part; the main process writes)."""
        state = self.training_state()  # collective: gathers RNG states (and FSDP shards, to process 0)
        if self.sharded:  # the weights are in the gathered state already (process 0 only)
            weights = self.exported(state) if self.main else {}
        else:
            weights = self.export()
        # every process of plain data parallelism must hold the same weights; FSDP shards
        # differ by design and are gathered from all processes above
        digests = dist.gather_objects(dist.weights_digest(self.task.model)) if self.world > 1 and not self.sharded else None
        path = None
        if self.main:
            path = ckpt.write_checkpoint(self.out_dir, self.step, state, weights, self.export_meta())
            removed = ckpt.prune(self.out_dir, self.options.keep_last)
            record: dict[str, Any] = {"event": "checkpoint", "step": self.step, "path": str(path), "reason": reason}
            if removed:
                record["removed"] = [p.name for p in removed]
            if digests is not None:
                record["rank_digests"] = digests
            self.log.write(record)
        if digests is not None and len(set(digests)) != 1:
            raise RuntimeError(f"processes hold different weights at step {self.step}: {digests}")
        self.accel.wait_for_everyone()
        return path
