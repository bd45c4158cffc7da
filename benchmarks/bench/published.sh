#!/usr/bin/env bash
# Published-size figures at 256x256 on the CPU (benchmarks/README.md). One sampler call each
# (--warmup 0 --repeats 1): these are seconds to minutes per image on a CPU. Iterative methods
# run a 2-call schedule (--set) to time one network call at the published architecture;
# multiply s/call by the nfe of the schedule you use (README table).
set -e
OUT=${1:-benchmarks/bench}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# LaMa's HRF perceptual loss needs the ADE20k weights (not downloaded here): off for the training step
zoo bench lama --preset big-lama --resolution 256 --warmup 0 --repeats 1 --train --set lama.hrf_pl_weight=0 --out $OUT/lama-big-lama-256.json
zoo bench mat --preset mat-256 --resolution 256 --warmup 0 --repeats 1 --out $OUT/mat-256.json
zoo bench conv-l1 --preset base --resolution 256 --warmup 0 --repeats 1 --train --out $OUT/conv-l1-base-256.json
zoo bench repaint --preset celebahq-256 --warmup 0 --repeats 1 --set repaint.sampling=custom --set repaint.t_T=2 \
    --set repaint.jump_length=1 --set repaint.jump_n_sample=1 --out $OUT/repaint-celebahq-256-2calls.json
zoo bench maskgit --preset imagenet-256 --warmup 0 --repeats 1 --out $OUT/maskgit-imagenet-256.json
zoo bench dit-mca --preset S/2 --resolution 256 --warmup 0 --repeats 1 --set dit-mca.num_steps=2 --set dit-mca.jump_length=1 \
    --set dit-mca.jump_n_sample=1 --out $OUT/dit-mca-S2-256-2steps.json
