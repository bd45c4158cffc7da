#!/bin/bash
# Do DIP-DDPM's settings, chosen on 30 val pairs from 2 photographs, hold on 30 val pairs
# spread over all 9 val photographs (eval sets drawn round-robin by photograph)?
# One thread; run from the repository root: bash benchmarks/study/valspread-2026-12-07/run.sh
set -euo pipefail
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
here=benchmarks/study/valspread-2026-12-07
ckpt=benchmarks/study/run/runs/dip-ddpm/15m/model.safetensors
ev=$here/work/val-lama-medium
[ -f $ev/manifest.json ] || zoo data eval-set --data benchmarks/scenes/build/scenes --split val --masks lama-medium \
  --count 30 --seed 0 --size 64 --out $ev
run() {  # name, then --set values
  local name=$1; shift
  local sets=(); for s in "$@"; do sets+=(--set "dip-ddpm.$s"); done
  zoo compare --metric psnr,psnr-hole --masks $ev --checkpoint $ckpt "${sets[@]}" --seed 0 --device cpu \
    --out $here/work/$name --json > /dev/null
  cp $here/work/$name/results.json $here/$name.json
}
run dip-alone-100 stages=dip dip_iters=100
run dip-alone-300 stages=dip dip_iters=300
run t0-25 t0=25 dip_iters=100
run t0-50 t0=50 dip_iters=100
