"""Network blocks that two or more methods share (like ``timm.layers``), re-exported flatly."""

from zoo.layers.attention import (
    EMPTY_MODES,
    MultiHeadContextualAttention,
    contextual_attention,
    contextual_mask,
    update_validity,
)

__all__ = [
    "EMPTY_MODES",
    "MultiHeadContextualAttention",
    "contextual_attention",
    "contextual_mask",
    "update_validity",
]
