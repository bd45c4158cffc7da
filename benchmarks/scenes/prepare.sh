#!/usr/bin/env bash
# Build the natural-photo "scenes" benchmark offline from photographs shipped in Debian
# packages (see README.md beside this file).
#
#   bash benchmarks/scenes/prepare.sh [BUILD_DIR]      (default: benchmarks/scenes/build, git-ignored)
#
# Needs: apt-get (with `apt-get update` done once) and dpkg-deb; nothing is installed.
# Environment: ZOO (default `zoo`) runs the zoo CLI; PYTHON (default `python3`) the build script.
# Writes BUILD_DIR/debs, BUILD_DIR/unpacked (the work folder), then
#   BUILD_DIR/scenes                         64 px crops: images/{train,val,test}, splits/, manifest.json
#   BUILD_DIR/eval/{val,test}-{lama-medium,lama-thick}   eval sets (images/, masks/, manifest.json)
# A rerun reuses the downloaded packages and rebuilds everything after them.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="${1:-$HERE/build}"
ZOO="${ZOO:-zoo}"
PYTHON="${PYTHON:-python3}"
SIZE=64
MASKS=(lama-medium lama-thick)
SEED=0

for tool in apt-get dpkg-deb sha256sum; do
  command -v "$tool" >/dev/null || { echo "Error: $tool not found; this script needs a Debian-based system" >&2; exit 2; }
done
start=$(date +%s)
mkdir -p "$BUILD/debs"

# 1. download each package (the version in packages.tsv if the archive still has it)
tail -n +2 "$HERE/packages.tsv" | while IFS=$'\t' read -r pkg version deb_sha; do
  if ls "$BUILD/debs/${pkg}_"*.deb >/dev/null 2>&1; then continue; fi
  ( cd "$BUILD/debs" && { apt-get download -q "$pkg=$version" 2>/dev/null || apt-get download -q "$pkg"; } ) \
    || { echo "Error: apt-get download $pkg failed; run 'apt-get update' first" >&2; exit 2; }
  got=$(sha256sum "$BUILD/debs/${pkg}_"*.deb | cut -c1-64)
  [ "$got" = "$deb_sha" ] || echo "note: $pkg is not the .deb of packages.tsv (another version?); the photographs' own sha256 are checked next" >&2
done

# 2. unpack without installing
rm -rf "$BUILD/unpacked"
mkdir -p "$BUILD/unpacked"
tail -n +2 "$HERE/packages.tsv" | while IFS=$'\t' read -r pkg version deb_sha; do
  dpkg-deb -x "$(ls "$BUILD/debs/${pkg}_"*.deb | head -1)" "$BUILD/unpacked/$pkg"
done

# 3. the kept photographs (sha256 checked) -> 64 px crops per split
rm -rf "$BUILD/scenes" "$BUILD/eval"
"$PYTHON" "$HERE/build.py" --unpacked "$BUILD/unpacked" --out "$BUILD/scenes"

# 4. eval sets: every validation / test crop with a LaMa mask of each kind
mkdir -p "$BUILD/eval"
for split in val test; do
  count=$(grep -c . "$BUILD/scenes/splits/$split.txt")
  for kind in "${MASKS[@]}"; do
    "$ZOO" data eval-set --data "$BUILD/scenes" --split "$split" --masks "$kind" --count "$count" \
      --size "$SIZE" --seed "$SEED" --out "$BUILD/eval/$split-$kind" --json >/dev/null
    echo "eval set $split-$kind: $count image/mask pairs"
  done
done
echo "scenes benchmark built in $BUILD in $(( $(date +%s) - start )) s"
