"""Diffusion building blocks shared by the pixel- and latent-diffusion plugins (RePaint,
DiT-MCA, DIP-DDPM): noise schedules and respacing (:mod:`.schedule`), DDPM / DDIM / undo
steps (:mod:`.steps`), RePaint's jump schedule (:mod:`.jump`), the resampling loop
(:mod:`.repaint`), training losses (:mod:`.losses`) and guided-diffusion's UNet
(:mod:`.guided_unet`)."""

from zoo.diffusion.jump import ScheduleCounts, count_steps, diffusers_points, jump_points
from zoo.diffusion.repaint import RepaintResult, repaint
from zoo.diffusion.schedule import BETA_SCHEDULES, Chain, make_betas
from zoo.diffusion.steps import SAMPLERS, predict_x0, reverse_step, split_output, undo_step

__all__ = [
    "BETA_SCHEDULES",
    "Chain",
    "RepaintResult",
    "SAMPLERS",
    "ScheduleCounts",
    "count_steps",
    "diffusers_points",
    "jump_points",
    "make_betas",
    "predict_x0",
    "repaint",
    "reverse_step",
    "split_output",
    "undo_step",
]
