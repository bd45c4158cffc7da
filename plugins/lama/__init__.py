"""LaMa: large-mask inpainting with Fast Fourier Convolutions (Suvorov et al., WACV 2022)."""
