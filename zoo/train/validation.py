"""Validation during training: metrics on a fixed held-out batch, PNG sample grids, and
``RUN/best.safetensors`` for the best value of ``--best-metric``, all with the EMA weights."""

from __future__ import annotations

import contextlib
import json

import torch
from safetensors.torch import save_file

from zoo.fsutil import atomic_path, write_text
from zoo.inpaint import inpaint
from zoo.train import dist, state as ckpt, watch


class ValidationMixin:
    """The trainer's validation (mixed into :class:`zoo.train.engine._Trainer`)."""

    # ---- validation, sample grids, best checkpoint ----
    def sample_fn(self):
        def fn(images, masks, generator):
            out = self.task.validation_sample(images, masks, generator)
            if out is not None:
                return out
            return inpaint(self.ctx.method, self.task.model, self.ctx.config, images, masks, generator)[0]

        return fn

    def watch(self, val_batch: dict[str, torch.Tensor], validator) -> None:
        opts = self.options
        do_val = bool(opts.val_every) and self.step % opts.val_every == 0
        do_grid = bool(opts.sample_every) and self.step % opts.sample_every == 0
        if not (do_val or do_grid):
            return
        rng = ckpt.rng_state()  # a sampler drawing from the global RNG must not change training
        with self.ema_weights():
            pred = watch.predict(self.task.model, self.sample_fn(), val_batch, self.device, self.ctx.seed)
        ckpt.set_rng_state(rng)
        if do_grid and self.main:
            watch.save_grid(self.out_dir / "samples" / f"{ckpt.checkpoint_name(self.step)}.png", val_batch, pred)
        if not do_val:
            return
        values = best_is_higher = None
        if validator is not None:  # main process
            values = validator(pred, val_batch["image"], val_batch["mask"])
            best_is_higher = validator.higher_is_better(opts.best_metric) if opts.best_metric in values else None
            self.log.write({"event": "val", "step": self.step, **{k: round(v, 6) for k, v in values.items()}})
        if self.sharded:  # every process takes part in gathering the best weights
            values, best_is_higher = dist.broadcast_object((values, best_is_higher))
        name = opts.best_metric
        if values is None or name not in values:
            return
        old = self.best.get("value")
        if old is None or (values[name] > old if best_is_higher else values[name] < old):
            self.best = {"metric": name, "value": values[name], "step": self.step}
            weights = self.export()  # collective under FSDP
            if self.main:
                with atomic_path(self.out_dir / "best.safetensors") as tmp:
                    save_file({k: v.contiguous().clone() for k, v in weights.items()}, str(tmp), metadata=self.export_meta({"best": self.best}))
                write_text(self.out_dir / "best.json", json.dumps(self.best, indent=2))

    @contextlib.contextmanager
    def ema_weights(self):
        """Temporarily load the EMA weights into the model (no-op without EMA)."""
        if self.ema is None:
            yield
            return
        model = self.task.model
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.ema.apply_to(backup))
        try:
            yield
        finally:
            model.load_state_dict(backup)
