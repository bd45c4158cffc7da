"""dit-mca: latent diffusion transformer with multi-head contextual attention."""
