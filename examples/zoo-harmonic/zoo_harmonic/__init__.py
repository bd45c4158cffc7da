"""Harmonic inpainting and a gradient-error metric for inpaint-zoo."""

__version__ = "0.2.0"
