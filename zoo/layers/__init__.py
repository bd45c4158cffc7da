"""Network blocks that two or more methods share (like ``timm.layers``), re-exported flatly."""

from zoo.layers.attention import (
    EMPTY_MODES,
    MultiHeadContextualAttention,
    contextual_attention,
    contextual_mask,
    update_validity,
)
from zoo.layers.window import (
    WindowSpec,
    shift_region_labels,
    window_contextual_attention,
    window_partition,
    window_reverse,
    window_validity,
)

__all__ = [
    "EMPTY_MODES",
    "MultiHeadContextualAttention",
    "contextual_attention",
    "contextual_mask",
    "update_validity",
    "WindowSpec",
    "shift_region_labels",
    "window_contextual_attention",
    "window_partition",
    "window_reverse",
    "window_validity",
]
