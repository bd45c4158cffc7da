"""MaskGIT (Chang et al., CVPR 2022): VQ tokens, a bidirectional transformer, iterative parallel decoding of the hole."""
