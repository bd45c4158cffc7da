"""RePaint (Lugmayr et al., CVPR 2022): inpainting by resampling an unconditional DDPM prior."""
