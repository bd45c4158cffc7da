#!/bin/bash
cd "$(git rev-parse --show-toplevel)"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec zoo train maskgit --data benchmarks/scenes/build/scenes --preset small --set stage=tokenizer \
  --set disc_start=500 --time-budget 75m --budget-clock cpu --val-every 500 --val-size 30 \
  --save-every 500 --keep-last 0 --seed 0 --device cpu --out runs/maskgit-tok-75m "$@"
