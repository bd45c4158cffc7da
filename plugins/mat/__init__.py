"""MAT: mask-aware transformer for large-hole inpainting (Li et al., CVPR 2022)."""
