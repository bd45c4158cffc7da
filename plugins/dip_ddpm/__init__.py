"""DIP-DDPM: a Deep Image Prior (Ulyanov et al., CVPR 2018) fitted to each image's known
pixels, refined by an unconditional DDPM that starts mid-schedule (SDEdit-style, known
region re-imposed at every step)."""
