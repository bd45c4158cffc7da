"""MaskGIT's networks: a VQ tokenizer (diffusers ``VQModel``), a bidirectional transformer
over its tokens with a [MASK] token, and a PatchGAN discriminator for the tokenizer.

Shapes (tiny preset: 32 px, downsample f = 4, K = 128 codes, D = 64):

    image (B, 3, H, W) -> tokenizer.encode -> z (B, C, H/f, W/f) -> nearest code -> tokens (B, H/f, W/f)
    tokens (B, N) with [MASK] = K -> transformer -> logits (B, N, K)
    tokens (B, H/f, W/f) -> codebook -> z_q -> tokenizer.decode -> image (B, 3, H, W)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from zoo_plugins.maskgit.config import MaskGITConfig


def vqmodel_config(cfg: MaskGITConfig) -> dict:
    """The diffusers ``VQModel`` config of ``cfg`` (``tokenizer_config`` when given)."""
    if cfg.tokenizer_config:
        return dict(cfg.tokenizer_config)
    n = len(cfg.vq_channels)
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * n,
        "up_block_types": ["UpDecoderBlock2D"] * n,
        "block_out_channels": list(cfg.vq_channels),
        "layers_per_block": cfg.vq_layers_per_block,
        "act_fn": "silu",
        "latent_channels": cfg.vq_latent_channels,
        "sample_size": cfg.resolution,
        "num_vq_embeddings": cfg.codebook_size,
        "norm_num_groups": cfg.vq_norm_groups,
        "vq_embed_dim": cfg.vq_embed_dim,
        "mid_block_add_attention": cfg.vq_mid_attention,
    }


# -- stage 2: bidirectional transformer --------------------------------------------------------
class Attention(nn.Module):
    """Multi-head self-attention over all tokens (no causal mask) through SDPA."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, heads, N, d)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)  # (B, heads, N, d)
        return self.proj(y.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """Transformer block; post-norm (BERT, as MaskGIT) or pre-norm."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float, prenorm: bool) -> None:
        super().__init__()
        self.prenorm = prenorm
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-12), nn.LayerNorm(dim, eps=1e-12)
        self.attn = Attention(dim, heads, dropout)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim), nn.Dropout(dropout))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, N, D) -> (B, N, D)
        if self.prenorm:
            x = x + self.drop(self.attn(self.norm1(x)))
            return x + self.mlp(self.norm2(x))
        x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.mlp(x))


class BidirectionalTransformer(nn.Module):
    """MaskGIT's token model: token + learned position embeddings -> blocks -> MLM head whose
    output layer is tied to the token embedding (logits over the K codes, not [MASK])."""

    def __init__(self, cfg: MaskGITConfig) -> None:
        super().__init__()
        side = cfg.resolution // cfg.downsample
        self.num_tokens, self.vocab = side * side, cfg.vocab_size
        self.mask_id = self.vocab  # [MASK] is the last embedding row
        D = cfg.dim
        self.tok_emb = nn.Embedding(self.vocab + 1, D)
        self.pos_emb = nn.Parameter(torch.zeros(1, self.num_tokens, D))
        self.emb_norm = nn.LayerNorm(D, eps=1e-12)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(D, cfg.heads, cfg.mlp_ratio, cfg.dropout, cfg.prenorm) for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(D, eps=1e-12) if cfg.prenorm else nn.Identity()
        self.head = nn.Sequential(nn.Linear(D, D), nn.GELU(), nn.LayerNorm(D, eps=1e-12))
        self.bias = nn.Parameter(torch.zeros(self.vocab))
        self.grad_checkpointing = False
        self.apply(self._init)
        nn.init.trunc_normal_(self.pos_emb, std=0.02)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def set_grad_checkpointing(self, on: bool = True) -> None:
        self.grad_checkpointing = on

    def positions(self, grid: tuple[int, int] | None) -> torch.Tensor:
        """Learned positions (1, N, D); bicubically resized for another token grid (h, w)."""
        side = math.isqrt(self.num_tokens)
        if grid is None or tuple(grid) == (side, side):
            return self.pos_emb
        D = self.pos_emb.shape[-1]
        pos = self.pos_emb.view(1, side, side, D).permute(0, 3, 1, 2)  # (1, D, side, side)
        pos = F.interpolate(pos, size=tuple(grid), mode="bicubic", align_corners=False)
        return pos.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], D)

    def forward(self, tokens: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """tokens (B, N) in [0, K] (K = [MASK]) on a token grid (h, w) with h * w = N
        (default: the training grid) -> logits (B, N, K)."""
        x = self.drop(self.emb_norm(self.tok_emb(tokens) + self.positions(grid)))  # (B, N, D)
        for blk in self.blocks:
            if self.grad_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        h = self.head(self.final_norm(x))  # (B, N, D)
        return h @ self.tok_emb.weight[: self.vocab].t() + self.bias  # (B, N, K)


# -- stage 1: discriminator -----------------------------------------------------------------------
class PatchDiscriminator(nn.Module):
    """pix2pix / taming N-layer PatchGAN: (B, 3, H, W) -> logits (B, 1, h, w)."""

    def __init__(self, channels: int, layers: int) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(3, channels, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = channels
        for i in range(1, layers + 1):
            stride = 2 if i < layers else 1
            c_next = channels * min(2**i, 8)
            mods += [nn.Conv2d(c, c_next, 4, stride, 1, bias=False), nn.BatchNorm2d(c_next), nn.LeakyReLU(0.2, True)]
            c = c_next
        mods.append(nn.Conv2d(c, 1, 4, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# -- the whole model ----------------------------------------------------------------------------------
class MaskGIT(nn.Module):
    """Holds ``tokenizer.*`` (VQModel), ``transformer.*`` and ``discriminator.*``: one
    checkpoint for both stages (the discriminator is only used to train the tokenizer)."""

    def __init__(self, cfg: MaskGITConfig) -> None:
        super().__init__()
        from diffusers import VQModel

        self.cfg = cfg
        self.tokenizer = VQModel.from_config(vqmodel_config(cfg))
        self.factor = 2 ** (len(self.tokenizer.config.block_out_channels) - 1)
        self.transformer = BidirectionalTransformer(cfg)
        self.discriminator = PatchDiscriminator(cfg.disc_channels, cfg.disc_layers)

    @property
    def mask_id(self) -> int:
        return self.transformer.mask_id

    def encode_tokens(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) in [-1, 1] -> token ids (B, H/f, W/f), the nearest code of each latent."""
        z = self.tokenizer.encode(images).latents  # (B, C, h, w)
        B, C, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, C)  # (B*h*w, C)
        codes = self.tokenizer.quantize.embedding.weight  # (K, C)
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codes.t() + codes.pow(2).sum(1)[None]  # (B*h*w, K)
        return dist.argmin(1).view(B, h, w)

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """token ids (B, h, w) -> images (B, 3, h*f, w*f) in about [-1, 1]."""
        z_q = self.tokenizer.quantize.embedding(tokens).permute(0, 3, 1, 2)  # (B, C, h, w)
        return self.tokenizer.decode(z_q, force_not_quantize=True).sample

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode_tokens(self.encode_tokens(images))


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def token_grid(cfg: MaskGITConfig) -> int:
    return cfg.resolution // cfg.downsample



