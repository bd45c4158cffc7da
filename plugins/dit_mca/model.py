"""DiT-MCA: a diffusers ``AutoencoderKL`` and, on its latents, a DiT (Peebles & Xie 2023)
whose attention is multi-head contextual attention (MAT, Li et al. 2022).

Denoiser, per call (latent grid h x w, patch p, tokens N = hw / p^2, width D)::

    z_t (B, C, h, w) | context (B, C + 1, h, w)  ->  cat (B, 2C + 1, h, w)
    x = PatchEmbed(cat) + pos                  # (B, N, D); context input channels start at 0
    c = TimestepMLP(sincos(t)) + null_class    # (B, D); DiT's label embedding of class 1000
    for block: x, valid = block(x, c, valid)   # adaLN-Zero; attention over valid keys only
    out = unpatchify(FinalLayer(x, c))         # (B, 2C, h, w): eps | v (learned variance)

The context is the masked image's latent and the hole mask averaged onto the latent grid;
"empty" context (classifier-free guidance) is a zero latent and a hole everywhere. A token
is valid when its patch holds a known pixel; contextual attention excludes the keys of
invalid tokens and marks a token valid once it has attended to a valid one
(:class:`zoo.layers.MultiHeadContextualAttention`). ``attention``:

* ``contextual-window``: within windows of ``window`` x ``window`` tokens, shifted by half a
  window in odd blocks (:func:`zoo.layers.window_contextual_attention`), so validity spreads
  from the hole's border inwards block by block; the first ``mask_update_blocks`` blocks use
  the mask, the last ``global_blocks`` attend over the whole grid. A sample with no valid
  token at all (the empty context) attends as if every token were valid;
* ``contextual-global``: over the whole image (every token is valid after block 1);
* ``self``: all tokens valid: plain DiT attention.

Key names follow DiT's ``models.py`` under ``dit.``, so a DiT checkpoint maps one to one
(see :mod:`.convert`); the three choices use the same weights.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import Mlp, PatchEmbed
from torch.utils.checkpoint import checkpoint

from zoo.diffusion import Chain, make_betas
from zoo.layers import MultiHeadContextualAttention, WindowSpec, update_validity, window_contextual_attention, window_validity
from zoo_plugins.dit_mca.config import DitMcaConfig

FREQ_DIM = 256  # DiT's frequency_embedding_size


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)  # (B, N, D)


def timestep_embedding(t: torch.Tensor, dim: int = FREQ_DIM, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) -> (B, dim): [cos(t f), sin(t f)], f = max_period^(-i / half) (GLIDE / DiT)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sincos_2d(dim: int, gh: int, gw: int) -> torch.Tensor:
    """Fixed 2-D sin-cos positions (MAE / DiT), (gh * gw, dim), row-major tokens. As in DiT,
    the first half encodes the column index and the second half the row index."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float64) / (dim / 4))  # (D/4,)

    def one_d(pos: torch.Tensor) -> torch.Tensor:  # (M,) -> (M, D/2)
        out = pos.reshape(-1, 1) * omega[None]
        return torch.cat([out.sin(), out.cos()], dim=1)

    rows, cols = torch.meshgrid(torch.arange(gh, dtype=torch.float64), torch.arange(gw, dtype=torch.float64), indexing="ij")
    return torch.cat([one_d(cols), one_d(rows)], dim=1).float()


class TimestepEmbedder(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(FREQ_DIM, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_embedding(t))  # (B, D)


def block_windows(cfg: DitMcaConfig, i: int) -> WindowSpec | None:
    """How block ``i`` (0-based) attends: None = image-wide contextual attention
    (``contextual-global``; ``self`` passes every token valid), else its window layout:
    the last ``global_blocks`` one window over the grid, the others ``window`` x ``window``
    tokens, shifted by half a window in odd blocks (Swin, MAT); masked in the first
    ``mask_update_blocks`` (-1: all)."""
    if cfg.attention != "contextual-window":
        return None
    masked = cfg.mask_update_blocks < 0 or i < cfg.mask_update_blocks
    if i >= cfg.depth - cfg.global_blocks:
        return WindowSpec(0, 0, masked)
    return WindowSpec(cfg.window, cfg.window // 2 if i % 2 else 0, masked)


def square_grid(n: int) -> tuple[int, int]:
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"{n} tokens are not a square grid; pass grid=(H, W)")
    return side, side


class DiTBlock(nn.Module):
    """adaLN-Zero block: shift / scale / gate for attention and MLP from the condition c.
    ``windows``: the block's window layout (None: attention over all tokens)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, windows: WindowSpec | None = None) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = MultiHeadContextualAttention(dim, heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=lambda: nn.GELU(approximate="tanh"))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.windows = windows

    def next_validity(self, valid: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """The token validity this block returns for ``valid`` (B, N), without running it."""
        if self.windows is None:
            return update_validity(valid)
        return window_validity(valid, grid or square_grid(valid.shape[1]), self.windows)

    def forward(self, x: torch.Tensor, c: torch.Tensor, valid: torch.Tensor, grid: tuple[int, int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = self.adaLN_modulation(c).chunk(6, dim=1)  # 6 x (B, D)
        h = modulate(self.norm1(x), shift_a, scale_a)
        if self.windows is None:
            a, valid = self.attn(h, valid)  # (B, N, D), (B, N)
        else:  # zero where a token had no valid key: it passes unchanged
            a, valid = window_contextual_attention(self.attn, h, valid, grid or square_grid(x.shape[1]), self.windows)
        x = x + gate_a.unsqueeze(1) * a
        x = x + gate_m.unsqueeze(1) * self.mlp(modulate(self.norm2(x), shift_m, scale_m))
        return x, valid


class FinalLayer(nn.Module):
    def __init__(self, dim: int, patch: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(dim, patch * patch * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, N, p*p*C_out)


class DiT(nn.Module):
    """The denoiser. forward(z_t (B, C, h, w), t (B,), context (B, C + 1, h, w), valid (B, N))
    -> (B, 2C or C, h, w)."""

    def __init__(self, cfg: DitMcaConfig, latent_channels: int) -> None:
        super().__init__()
        D, p = cfg.hidden_size, cfg.patch_size
        self.latent_channels, self.patch = latent_channels, p
        self.out_channels = 2 * latent_channels if cfg.learn_sigma else latent_channels
        self.x_embedder = PatchEmbed(None, p, 2 * latent_channels + 1, D, bias=True, strict_img_size=False)
        self.t_embedder = TimestepEmbedder(D)
        self.null_class = nn.Parameter(torch.zeros(D))  # DiT's y_embedder row 1000, added to c
        self.blocks = nn.ModuleList([DiTBlock(D, cfg.num_heads, cfg.mlp_ratio, block_windows(cfg, i)) for i in range(cfg.depth)])
        self.windowed = cfg.attention == "contextual-window"
        self.final_layer = FinalLayer(D, p, self.out_channels)
        self.grad_checkpointing = False
        self._pos: dict[tuple[int, int], torch.Tensor] = {}
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """DiT's init: xavier linears, zero biases; patch embedding like a linear; N(0, 0.02)
        for the timestep MLP and the class row; adaLN modulation and the output layer zero
        (every block starts as the identity). The context input channels start at zero."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        w = self.x_embedder.proj.weight.data  # (D, 2C + 1, p, p)
        nn.init.xavier_uniform_(w[:, : self.latent_channels].reshape(w.shape[0], -1))
        w[:, self.latent_channels :] = 0
        nn.init.zeros_(self.x_embedder.proj.bias)
        nn.init.normal_(self.null_class, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        for layer in (self.final_layer.adaLN_modulation[-1], self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def pos_embed(self, gh: int, gw: int, like: torch.Tensor) -> torch.Tensor:
        key = (gh, gw)
        if key not in self._pos:
            self._pos[key] = sincos_2d(like.shape[-1], gh, gw)
        return self._pos[key].to(device=like.device, dtype=like.dtype)[None]  # (1, N, D)

    def unpatchify(self, x: torch.Tensor, gh: int, gw: int) -> torch.Tensor:
        p, c = self.patch, self.out_channels
        x = x.reshape(x.shape[0], gh, gw, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, gh * p, gw * p)  # (B, C_out, h, w)

    def start_validity(self, valid: torch.Tensor) -> torch.Tensor:
        """Windowed attention: a sample with no valid token (nothing known, e.g. the empty
        context of guidance) has no context to wait for and attends as if all were valid
        (what image-wide attention does with MAT's -100 rule). (B, N) -> (B, N)."""
        if not self.windowed:
            return valid
        return torch.where(valid.amax(dim=1, keepdim=True) > 0, valid, torch.ones_like(valid))

    def validity_trace(self, valid: torch.Tensor, grid: tuple[int, int]) -> list[torch.Tensor]:
        """The dynamic mask after each block, (B, N) each: a function of the starting
        validity and the layout only (not of z_t, t or the weights)."""
        valid = self.start_validity(valid.float())
        trace = []
        for block in self.blocks:
            valid = block.next_validity(valid, grid)
            trace.append(valid)
        return trace

    def forward(self, z: torch.Tensor, t: torch.Tensor, context: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        gh, gw = z.shape[-2] // self.patch, z.shape[-1] // self.patch
        x = self.x_embedder(torch.cat([z, context.to(z.dtype)], dim=1))  # (B, N, D)
        x = x + self.pos_embed(gh, gw, x)
        c = self.t_embedder(t) + self.null_class  # (B, D)
        valid = self.start_validity(valid.to(x.dtype))
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled():
                x, valid = checkpoint(block, x, c, valid, (gh, gw), use_reentrant=False)
            else:
                x, valid = block(x, c, valid, (gh, gw))
        return self.unpatchify(self.final_layer(x, c), gh, gw)


def vae_config(cfg: DitMcaConfig) -> dict:
    """The AutoencoderKL config: the one read from ``vae=PATH``, else built from the fields."""
    if cfg.vae_config:
        return dict(cfg.vae_config)
    n = len(cfg.vae_channels)
    return {
        "in_channels": 3, "out_channels": 3, "latent_channels": cfg.latent_channels,
        "down_block_types": ["DownEncoderBlock2D"] * n, "up_block_types": ["UpDecoderBlock2D"] * n,
        "block_out_channels": list(cfg.vae_channels), "layers_per_block": cfg.vae_layers,
        "norm_num_groups": 32, "sample_size": cfg.resolution,
    }


class DitMca(nn.Module):
    """The checkpoint: ``vae.*`` (AutoencoderKL), ``dit.*`` (denoiser), ``latent_scale``."""

    def __init__(self, cfg: DitMcaConfig) -> None:
        super().__init__()
        from diffusers import AutoencoderKL

        self.cfg = cfg
        self.vae = AutoencoderKL.from_config(vae_config(cfg))
        self.latent_channels = int(self.vae.config.latent_channels)
        self.factor = 2 ** (len(self.vae.config.block_out_channels) - 1)
        self.multiple = self.factor * cfg.patch_size
        #: image sizes sampling pads to: whole windows of tokens with contextual-window
        self.sample_multiple = self.multiple * (cfg.window if cfg.attention == "contextual-window" else 1)
        self.dit = DiT(cfg, self.latent_channels)
        self.register_buffer("latent_scale", torch.tensor(float(cfg.latent_scale or 1.0)))

    def set_grad_checkpointing(self, on: bool = True) -> None:
        self.dit.grad_checkpointing = on
        if on:
            self.vae.enable_gradient_checkpointing()
        else:
            self.vae.disable_gradient_checkpointing()

    # -- latent space ---------------------------------------------------------------------
    def encode(self, images: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> scaled latent (B, C, H/f, W/f): posterior mean, or a sample."""
        dist = self.vae.encode(images).latent_dist
        z = dist.sample(generator) if sample else dist.mean
        return z * self.latent_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z / self.latent_scale).sample  # (B, 3, H, W)

    # -- conditioning -----------------------------------------------------------------------
    def token_validity(self, holes: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) 1 = hole -> (B, N) float: 1 where a token's f*p x f*p patch holds a
        known pixel (every token with ``attention=self``)."""
        valid = (-F.max_pool2d(-holes, self.multiple) < 1).flatten(1).float()  # any known pixel in the patch
        return torch.ones_like(valid) if self.cfg.attention == "self" else valid

    def context(self, images: torch.Tensor, holes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Known region -> (context (B, C + 1, h, w), token validity (B, N), latent hole (B, 1, h, w)).

        context = [latent of the masked image | hole fraction per latent pixel]; a token is
        valid when its f*p x f*p patch holds a known pixel; a latent pixel is known (for the
        re-imposition while sampling) when its f x f patch is entirely known."""
        f = self.factor
        z = self.encode(images * (1 - holes))  # (B, C, h, w)
        frac = F.avg_pool2d(holes, f)  # (B, 1, h, w)
        context = torch.cat([z, frac], dim=1)
        latent_hole = F.max_pool2d(holes, f)  # (B, 1, h, w): 1 where any pixel is a hole
        return context, self.token_validity(holes), latent_hole

    def empty_context(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Classifier-free guidance's "no context": nothing known (zero latent, hole everywhere);
        no token is valid, which the contextual attention treats as plain attention (image-wide:
        MAT's -100 rule; windowed: :meth:`DiT.start_validity`)."""
        B, _, h, w = like.shape
        context = torch.cat([torch.zeros(B, self.latent_channels, h, w), torch.ones(B, 1, h, w)], dim=1).to(like)
        n = (h // self.cfg.patch_size) * (w // self.cfg.patch_size)
        valid = torch.ones(B, n) if self.cfg.attention == "self" else torch.zeros(B, n)
        return context, valid.to(like)

    def forward(self, z: torch.Tensor, t: torch.Tensor, context: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.dit(z, t, context, valid)


def make_chain(cfg: DitMcaConfig) -> Chain:
    """The training chain (T levels)."""
    return Chain.from_betas(make_betas(cfg.beta_schedule, cfg.diffusion_steps, cfg.beta_start, cfg.beta_end))


def guided_output(model: DitMca, z: torch.Tensor, t: torch.Tensor, cond: tuple[torch.Tensor, torch.Tensor], empty: tuple[torch.Tensor, torch.Tensor], w: float) -> torch.Tensor:
    """Classifier-free guidance on the context: eps = eps(z, t, empty) + w (eps(z, t, c) - eps(z, t, empty)).

    w = 1 is the conditional output, w = 0 the unconditional one (one call each); otherwise
    two calls in one batch, and the learned variance comes from the conditional call."""
    if w == 1.0:
        return model(z, t, *cond)
    if w == 0.0:
        return model(z, t, *empty)
    both = model(torch.cat([z, z]), torch.cat([t, t]), torch.cat([cond[0], empty[0]]), torch.cat([cond[1], empty[1]]))
    out_c, out_u = both.chunk(2)
    C = z.shape[1]
    eps = out_u[:, :C] + w * (out_c[:, :C] - out_u[:, :C])
    return torch.cat([eps, out_c[:, C:]], dim=1)


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
