"""Inference of ``dip-ddpm``: stage 1 fits a Deep Image Prior to every image's known
pixels, stage 2 noises that estimate to timestep t0 and lets the DDPM prior denoise from
there with the known region re-imposed after every step; and the score hook.

Stage 1 (Ulyanov et al. 2018, sec. 3 and the inpainting notebook of the official code):

1. z ~ U[0, 0.1) with ``dip_input_channels`` channels, fixed per image;
2. hold out ``dip_holdout`` of the known pixels (per image) for early stopping;
3. each iteration: out = f_theta(z + reg_noise * n), loss = MSE on the fitted known pixels
   only (:func:`~zoo_plugins.dip_ddpm.train.dip_loss`), one Adam step;
4. every ``dip_eval_every`` iterations: out = f_theta(z); keep the output with the lowest
   held-out error; an image stops after ``dip_patience`` evaluations without improvement
   (or at ``dip_iters``). All G images run as one batched model (:class:`SkipNet`).

Stage 2 (SDEdit, Meng et al. 2022, with RePaint's re-imposition, Lugmayr et al. 2022):

5. x_t0 = sqrt(abar_t0) x_dip + sqrt(1 - abar_t0) eps, x_dip composited with the known pixels;
6. walk the chain of levels 0..t0 respaced to ``refine_steps`` levels (optionally with
   RePaint's jumps): one network call per step down (DDPM or DDIM step), then the known
   region := the input noised to the new level (:func:`zoo.diffusion.repaint`);
7. composite.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from zoo.diffusion import count_steps, jump_points, repaint
from zoo.diffusion.losses import hole_denoising_loss
from zoo.errors import ZooError
from zoo.progress import enabled as inner_bars
from zoo.spec import SampleOutput
from zoo_plugins.dip_ddpm.config import DipDdpmConfig
from zoo_plugins.dip_ddpm.model import DipDdpm, SkipNet, make_chain, refine_chain
from zoo_plugins.dip_ddpm.train import dip_loss


@dataclass
class DipResult:
    images: torch.Tensor  # (G, 3, H, W) in [-1, 1], composited with the known pixels
    heldout_mse: torch.Tensor  # (G,) best held-out MSE, [-1, 1] units (nan without held-out pixels)
    fit_mse: torch.Tensor  # (G,) MSE on the fitted known pixels of the kept output
    best_iter: torch.Tensor  # (G,) iteration of the kept output
    iters: int  # iterations run (the batch stops when every image has stopped)


def _masked_mse(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    w = m.expand_as(a)
    return ((a - b) ** 2 * w).flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1)


def _rand(shape, generator: torch.Generator, like: torch.Tensor, normal: bool = False) -> torch.Tensor:
    fn = torch.randn if normal else torch.rand
    return fn(shape, generator=generator, device=generator.device).to(like.device, like.dtype)


def fit_dip(images: torch.Tensor, holes: torch.Tensor, cfg: DipDdpmConfig, generator: torch.Generator, progress: bool = False) -> DipResult:
    """Stage 1 on a batch: images (G, 3, H, W) in [-1, 1], holes (G, 1, H, W) 1 = hole; H, W
    multiples of 2 ** depth. Hole pixels are never read (multiplied by zero weight)."""
    g, _, h, w = images.shape
    depth = len(cfg.dip_channels_down)
    if min(h, w) < 2 ** (depth + 1):  # BatchNorm needs >= 2x2 pixels at the deepest scale
        raise ZooError(f"dip_channels_down: {depth} scales need images of at least {2 ** (depth + 1)} px per side; this batch is {w}x{h} (give fewer scales)")
    dev = images.device
    known = (1 - holes).to(images)
    target = (images * known + 1) / 2  # DIP fits [0, 1]; hole content erased
    net = SkipNet(g, cfg, generator).to(dev)  # G networks, initialised from the generator
    z = _rand((g, cfg.dip_input_channels, h, w), generator, images) * 0.1  # 1. fixed input
    held = known * (_rand((g, 1, h, w), generator, images) < cfg.dip_holdout).to(images)  # 2.
    fit_mask = known - held
    has_held = held.flatten(1).sum(1) > 0
    opt = torch.optim.Adam(net.parameters(), lr=cfg.dip_lr)
    best = target.clone()
    best_err = torch.full((g,), float("inf"), device=dev)
    best_iter = torch.zeros(g, dtype=torch.long)
    stale = torch.zeros(g, dtype=torch.long, device=dev)
    active = torch.ones(g, dtype=torch.bool, device=dev)
    it = 0
    bar = tqdm(range(1, cfg.dip_iters + 1), desc="dip", disable=not inner_bars(progress), dynamic_ncols=True, leave=False)
    for it in bar:
        noise = _rand(z.shape, generator, z, normal=True) * cfg.dip_reg_noise if cfg.dip_reg_noise > 0 else 0.0
        loss = dip_loss(net(z + noise), target, fit_mask)  # 3.
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if it % cfg.dip_eval_every and it != cfg.dip_iters:
            continue
        with torch.no_grad():  # 4. held-out check on the noise-free output
            out = net(z)
            err = torch.where(has_held, _masked_mse(out, target, held), torch.zeros(g, device=dev))
            improved = active & ((err < best_err) | ~has_held)
            best[improved] = out[improved]
            best_err = torch.where(improved, err, best_err)
            best_iter[improved.cpu()] = it
            stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
            active &= (stale < cfg.dip_patience) | ~has_held
        if progress:
            bar.set_postfix(loss=float(loss.detach()) / g, active=int(active.sum()), refresh=False)
        if not active.any():
            break
    bar.close()
    est = best * 2 - 1
    est = images * known + est * (1 - known)
    heldout = torch.where(has_held, best_err * 4, torch.full_like(best_err, float("nan")))  # [0,1] -> [-1,1] units
    fit = _masked_mse(best * 2 - 1, images * known, fit_mask)
    return DipResult(est.detach(), heldout.cpu(), fit.detach().cpu(), best_iter, it)


def refine_points(cfg: DipDdpmConfig) -> list[int]:
    """Levels stage 2 visits on :func:`refine_chain`: ``refine_steps - 1`` down to -1, with
    RePaint's jumps when ``jump_n_sample`` > 1."""
    return jump_points(cfg.refine_steps, cfg.jump_length, cfg.jump_n_sample)


def expected_nfe(cfg: DipDdpmConfig) -> int:
    """Network calls per image of stage 2 (0 with ``stages=dip``)."""
    return 0 if cfg.stages == "dip" else count_steps(refine_points(cfg)).down


def refine(model: DipDdpm, cfg: DipDdpmConfig, images: torch.Tensor, holes: torch.Tensor, estimate: torch.Tensor | None, generator: torch.Generator, progress: bool = False):
    """Stage 2: from ``estimate`` noised to t0 (or pure noise when None) down to the clean
    image, the known region re-imposed after every step. Returns (images, nfe)."""
    chain = refine_chain(cfg)
    top = len(chain) - 1
    start = torch.randn(images.shape, generator=generator, device=generator.device).to(images)
    x_init = start if estimate is None else chain.q_sample(estimate, top, start)  # 5.
    result = repaint(model, images, holes, chain, refine_points(cfg), generator, cfg.sampler, cfg.eta, cfg.clip_denoised,
                     x_init=x_init, progress=progress, desc="dip-ddpm refine", known_noise="shared")  # 6.
    return result.images, result.nfe


def _pad(images: torch.Tensor, holes: torch.Tensor, multiple: int):
    h, w = images.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return images, holes
    mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
    return F.pad(images, (0, pw, 0, ph), mode=mode), F.pad(holes, (0, pw, 0, ph))  # padding counts as known


def _sync(t: torch.Tensor) -> None:
    if t.device.type == "cuda":
        torch.cuda.synchronize(t.device)


@torch.no_grad()
def sample(model: DipDdpm, cfg: DipDdpmConfig, images: torch.Tensor, holes: torch.Tensor, generator: torch.Generator, progress: bool = True) -> SampleOutput:
    """images (B, 3, H, W) in [-1, 1], holes (B, 1, H, W) 1 = hole -> composited result.

    ``info``: ``nfe`` (network calls of the prior per image), ``dip_iters`` (iterations run),
    ``dip_best_iter`` (mean iteration of the kept DIP outputs), ``dip_heldout_mse``,
    ``time_dip_s`` / ``time_ddpm_s`` (seconds per stage for the batch), ``schedule``."""
    h, w = images.shape[-2:]
    holes = holes.to(images)
    images = images * (1 - holes)  # never read the hole
    multiple = max(2 ** len(cfg.dip_channels_down), model.prior.multiple)
    x, hole = _pad(images, holes, multiple)
    info: dict = {"nfe": 0, "time_dip_s": 0.0, "time_ddpm_s": 0.0}
    estimate = None
    if cfg.stages in ("dip", "dip+ddpm"):
        t = time.perf_counter()
        with torch.enable_grad():
            dip = fit_dip(x, hole, cfg, generator, progress=progress)
        _sync(x)
        estimate = dip.images
        info.update(time_dip_s=round(time.perf_counter() - t, 3), dip_iters=dip.iters,
                    dip_best_iter=float(dip.best_iter.float().mean()), dip_heldout_mse=float(dip.heldout_mse.nanmean()))
    out = estimate
    if cfg.stages in ("ddpm", "dip+ddpm"):
        t = time.perf_counter()
        out, nfe = refine(model, cfg, x, hole, estimate, generator, progress=progress)
        _sync(x)
        info.update(nfe=nfe, time_ddpm_s=round(time.perf_counter() - t, 3))
    out = out[..., :h, :w]
    info["schedule"] = (f"{cfg.stages}" + (f" dip_iters<={cfg.dip_iters}" if cfg.stages != "ddpm" else "")
                        + (f" t0={cfg.t0} steps={cfg.refine_steps} j={cfg.jump_length} r={cfg.jump_n_sample} {cfg.sampler}" if cfg.stages != "dip" else ""))
    return SampleOutput(images * (1 - holes) + out * holes, info)


@torch.no_grad()
def score(model: DipDdpm, cfg: DipDdpmConfig, images: torch.Tensor, holes: torch.Tensor) -> dict[str, float]:
    """DIP's error on the held-out known pixels (fixed seed) and on the fitted ones, and the
    prior's eps-MSE on the hole of the ground truth over ``score_levels`` timesteps."""
    holes = holes.to(images)
    x, hole = _pad(images, holes, max(2 ** len(cfg.dip_channels_down), model.prior.multiple))
    with torch.enable_grad():
        dip = fit_dip(x, hole, cfg, torch.Generator().manual_seed(0))
    chain = make_chain(cfg)
    n = cfg.score_levels
    levels = sorted({round(i * (len(chain) - 1) / max(n - 1, 1)) for i in range(n)})
    out = {"dip_fit_mse": float(dip.fit_mse.mean()), "hole_denoise_mse": float(hole_denoising_loss(model, chain, x, hole, levels).mean())}
    if cfg.dip_holdout > 0:
        out["dip_heldout_mse"] = float(dip.heldout_mse.nanmean())
    return out
