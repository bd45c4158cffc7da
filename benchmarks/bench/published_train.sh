#!/usr/bin/env bash
# Published-size figures at 256x256 on the CPU that published.sh leaves out (benchmarks/README.md):
#  - one engine training step of every learned method at its published size, at batch 1
#    (--set M.batch_size=1: the published batches, 16 to 256 images, do not fit this machine's
#    time or memory; on a CPU a step's time grows about linearly with the batch);
#  - dip-ddpm at celebahq-256 with its Deep Image Prior fit cut to 5 and to 25 iterations and 2
#    prior calls: the difference of the two runs' DIP times / 20 is the cost of one DIP iteration.
# The perceptual losses of mat (VGG-19) and lama (ADE20k ResNet-50-dilated) run with random
# weights in the published layouts, made here (a step's cost does not depend on the values);
# nothing is downloaded. maskgit's tokenizer step runs with its PatchGAN on (disc_start=0, as
# after the warm-up) but without LPIPS (its VGG backbone would come from the torch hub cache).
set -e
OUT=${1:-benchmarks/bench}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
python - "$W" <<'EOF'
import sys, torch, torchvision
from zoo.plugins import get_manager
get_manager()  # loads the plugins, so their modules import
from zoo_plugins.lama.losses import ResNet50Dilated
torch.save(torchvision.models.vgg19().state_dict(), f"{sys.argv[1]}/vgg19-random.pth")
torch.save(ResNet50Dilated().state_dict(), f"{sys.argv[1]}/encoder_epoch_20.pth")
EOF
B="--warmup 0 --repeats 2 --no-flops --train"
zoo bench mat --preset mat-256 --resolution 256 $B --set mat.batch_size=1 --set mat.pcp_weights=$W/vgg19-random.pth --out $OUT/mat-256-train.json
zoo bench lama --preset big-lama --resolution 256 $B --set lama.batch_size=1 --set lama.hrf_pl_weights=$W/encoder_epoch_20.pth --out $OUT/lama-big-lama-256-train.json
zoo bench dip-ddpm --preset celebahq-256 --warmup 0 --repeats 1 --no-flops --set dip-ddpm.dip_iters=5 --set dip-ddpm.refine_steps=2 --out $OUT/dip-ddpm-celebahq-256-dip5.json
zoo bench dip-ddpm --preset celebahq-256 --warmup 0 --repeats 1 --no-flops --set dip-ddpm.dip_iters=25 --set dip-ddpm.refine_steps=2 --out $OUT/dip-ddpm-celebahq-256-dip25.json
zoo bench repaint --preset celebahq-256 $B --set repaint.batch_size=1 --set repaint.sampling=custom --set repaint.t_T=2 \
    --set repaint.jump_length=1 --set repaint.jump_n_sample=1 --out $OUT/repaint-celebahq-256-train.json
zoo bench maskgit --preset imagenet-256 $B --repeats 3 --set maskgit.batch_size=1 --set maskgit.tokenizer_steps=1 --set maskgit.transformer_steps=1 --set maskgit.disc_start=0 --set maskgit.perceptual_weight=0 \
    --out $OUT/maskgit-imagenet-256-train.json
zoo bench dit-mca --preset S/2 --resolution 256 $B --set dit-mca.batch_size=1 --set dit-mca.vae_steps=3 --set dit-mca.latent_scale=0.18215 \
    --set dit-mca.num_steps=2 --set dit-mca.jump_length=1 --set dit-mca.jump_n_sample=1 --out $OUT/dit-mca-S2-256-train.json
