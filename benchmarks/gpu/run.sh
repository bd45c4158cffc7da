#!/usr/bin/env bash
# The prepared GPU run (issue 24 item 9): one script, under 10 minutes on one GPU.
#
#   benchmarks/gpu/run.sh [--scenes DIR] [--out DIR]     on a machine with a CUDA GPU
#   benchmarks/gpu/run.sh --dry-run [--out DIR]          the same steps on a CPU in seconds
#
# 1. `zoo bench --device cuda --precision bf16 --train` of every method in `zoo list` at its
#    published size (preset and resolution below): sampling latency, s per network call, GFLOPs,
#    peak memory, and the engine's training step at the preset's batch (--micro-batch auto splits
#    a batch that does not fit). Iterative samplers run a 2-call schedule (--set), as in
#    benchmarks/bench/published.sh: multiply s/call by the nfe of the schedule you use. The
#    perceptual losses of lama and mat run with random weights in their published layouts (a
#    step's cost does not depend on the values; nothing is downloaded). -> bench-<method>.json
# 2. `zoo study --budget 2m` on the natural-photo benchmark (benchmarks/scenes/, built offline
#    beforehand with benchmarks/scenes/prepare.sh and copied along): $STUDY_METHODS (default
#    lama,repaint, plus telea; every method at 2 minutes each would not fit in 10 minutes), small
#    presets, 64 px, lama-medium masks, $EVAL_COUNT test pairs. -> study-2m.json (its
#    results.json), the study folder in study-2m/ (resumes when rerun).
# 3. run.json: the GPU's name, the date, the versions, each step's wall time and exit status.
#
# --dry-run: the same steps on the CPU in seconds, into --out (default: a new temporary folder),
# so that tests/test_gpu_script.py runs it: one `zoo bench` process for every method (tiny
# presets, 32 px, fp32, one timed call and step) split into the same per-method files, and the
# study on `shapes` (conv-l1 and telea, tiny, 32 px, 2 s budget, 20 test images). Without
# --dry-run, JSON goes beside this script.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DRY=0
OUT=""
SCENES="$HERE/../scenes/build/scenes"
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --out) OUT="$2"; shift ;;
        --scenes) SCENES="$2"; shift ;;
        -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
        *) echo "Error: unknown argument '$1'; valid: --dry-run, --out DIR, --scenes DIR" >&2; exit 2 ;;
    esac
    shift
done
ZOO=${ZOO:-zoo}
STUDY_METHODS=${STUDY_METHODS:-lama,repaint}
EVAL_COUNT=${EVAL_COUNT:-200}
if [ "$DRY" = 1 ]; then
    OUT=${OUT:-$(mktemp -d)}
    DEVICE=cpu; PRECISION=fp32; BUDGET=2s; DATA=shapes; STUDY_PRESET=tiny; RES=32; EVAL_COUNT=20; VAL_COUNT=5
    STUDY_METHODS=${STUDY_METHODS_DRY:-conv-l1}
else
    OUT=${OUT:-$HERE}
    DEVICE=cuda; PRECISION=bf16; BUDGET=2m; DATA=$SCENES; STUDY_PRESET=small; RES=64; VAL_COUNT=50
    STEP_LIMIT=75
    if [ ! -d "$DATA" ]; then
        echo "Error: the natural-photo benchmark is not at $DATA; build it with benchmarks/scenes/prepare.sh (offline machine: build it elsewhere and copy it) or pass --scenes DIR" >&2
        exit 2
    fi
fi
mkdir -p "$OUT"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}

# method -> published preset, resolution and the --set values of its bench (dry run: tiny, 32 px)
published() {
    case "$1" in
        telea) echo "default 256" ;;
        conv-l1) echo "base 256" ;;
        lama) echo "big-lama 256 --set lama.hrf_pl_weights=$W/encoder_epoch_20.pth" ;;
        mat) echo "mat-512 512 --set mat.pcp_weights=$W/vgg19-random.pth" ;;
        repaint) echo "places-256 256 --set repaint.sampling=custom --set repaint.t_T=2 --set repaint.jump_length=1 --set repaint.jump_n_sample=1" ;;
        maskgit) echo "imagenet-256 256 --set maskgit.tokenizer_steps=1 --set maskgit.transformer_steps=1 --set maskgit.disc_start=0 --set maskgit.perceptual_weight=0" ;;
        dit-mca) echo "XL/2 256 --set dit-mca.vae_steps=3 --set dit-mca.num_steps=2 --set dit-mca.jump_length=1 --set dit-mca.jump_n_sample=1" ;;
        dip-ddpm) echo "celebahq-256 256 --set dip-ddpm.dip_iters=5 --set dip-ddpm.refine_steps=2" ;;
        *) echo "" ;;  # a third-party method: its default preset and resolution
    esac
}

status_lines=()
step() {  # step NAME LIMIT_S COMMAND...: run with a time limit, record wall time and exit code
    local name=$1 limit=$2; shift 2
    local t0=$SECONDS rc=0
    echo ">> $name: $*" >&2
    timeout "$limit" "$@" || rc=$?
    status_lines+=("{\"step\": \"$name\", \"seconds\": $((SECONDS - t0)), \"exit\": $rc}")
    [ $rc = 0 ] || echo "Warning: $name exited with $rc (124: over its ${limit} s limit)" >&2
}

T0=$SECONDS
if [ "$DRY" = 0 ]; then  # random weights in the published layouts of the perceptual losses
    python - "$W" <<'EOF'
import sys, torch, torchvision
from zoo.plugins import get_manager
get_manager()  # loads the plugins, so their modules import
from zoo_plugins.lama.losses import ResNet50Dilated
torch.save(torchvision.models.vgg19().state_dict(), f"{sys.argv[1]}/vgg19-random.pth")
torch.save(ResNet50Dilated().state_dict(), f"{sys.argv[1]}/encoder_epoch_20.pth")
EOF
fi

if [ "$DRY" = 1 ]; then
    # one process for every method (tiny preset where there is one, 32 px, one timed call and
    # step, no FLOP count), split into the same bench-<method>.json files as the real run
    step "bench all" 240 $ZOO bench --resolution 32 --warmup 0 --repeats 1 --no-flops --device $DEVICE --precision $PRECISION --train \
        --micro-batch auto --json --out "$W/bench.json" > /dev/null
    python - "$W/bench.json" "$OUT" <<'EOF'
import json, re, sys
doc = json.load(open(sys.argv[1]))
for r in doc["results"]:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", r["method"])
    open(f"{sys.argv[2]}/bench-{safe}.json", "w").write(json.dumps({**doc, "results": [r]}, indent=1) + "\n")
EOF
else
    while read -r m; do  # one process per method: each at its own published preset and resolution
        read -r -a spec <<< "$(published "$m")"
        args=(--warmup 1 --repeats 2)
        [ ${#spec[@]} -ge 2 ] && args+=(--preset "${spec[0]}" --resolution "${spec[1]}" "${spec[@]:2}")
        safe=${m//[^A-Za-z0-9_.-]/_}
        step "bench $m" $STEP_LIMIT $ZOO bench "$m" "${args[@]}" --device $DEVICE --precision $PRECISION --train --micro-batch auto \
            --json --out "$OUT/bench-$safe.json" > /dev/null
    done <<< "$($ZOO list --json | python -c "import json, sys; [print(m['name']) for m in json.load(sys.stdin)]")"
fi

STUDY_DIR="$OUT/study-$BUDGET"
step "study" $(( DRY == 1 ? 300 : 420 )) $ZOO study --data "$DATA" --methods "$STUDY_METHODS" --budget $BUDGET --masks lama-medium \
    --preset $STUDY_PRESET --resolution $RES --eval-count $EVAL_COUNT --val-count $VAL_COUNT --device $DEVICE --out "$STUDY_DIR" --no-progress
[ -f "$STUDY_DIR/results.json" ] && cp "$STUDY_DIR/results.json" "$OUT/study-$BUDGET.json"

python - "$OUT/run.json" "$DEVICE" "$DRY" "$((SECONDS - T0))" "${status_lines[@]}" <<'EOF'
import json, sys, time, torch
from zoo.provenance import versions
path, device, dry, total, *steps = sys.argv[1:]
gpu = torch.cuda.get_device_name(0) if device == "cuda" and torch.cuda.is_available() else None
doc = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "dry_run": dry == "1", "device": device, "gpu": gpu,
       "total_seconds": int(total), "steps": [json.loads(s) for s in steps], "versions": versions()}
open(path, "w").write(json.dumps(doc, indent=1) + "\n")
EOF
echo "wrote $OUT/run.json, bench-*.json, study-$BUDGET.json in $((SECONDS - T0)) s" >&2
