#!/usr/bin/env bash
# Download, here (where pip reaches the package index), the wheels that the lent GPU machine
# lacks, for its Python (3.12, x86-64 manylinux), into .whl/ (ignored by git), so that
# scripts/gpu-measure.sh can install them there with no network. torch and torchvision are
# never fetched: that machine's own build (2.11 with CUDA when last seen) is the one to use.
#
#   scripts/fetch-wheels.sh [DIR]          # default .whl; then carry DIR with the checkout
#
# The versions are the ones installed here, the ones the CPU tests pass with. The machine
# already has accelerate, transformers, torchmetrics, safetensors, huggingface-hub, timm,
# scikit-image, scipy, pandas, pyarrow, matplotlib, tqdm, pillow and the rest (the device
# README's KINDS.md lists them); each wheel's own needs are printed at the end to check.
set -euo pipefail
cd "$(dirname "$0")/.."
dir="${1:-.whl}"
packages=(diffusers peft open_clip_torch clean-fid lpips ftfy wcwidth hidiffusion)
pins=()
for name in "${packages[@]}"; do
  version="$(python3 -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")" || {
    echo "error: $name is not installed here; run python -m pip install -e . first" >&2; exit 2; }
  pins+=("$name==$version")
done
mkdir -p "$dir"
rm -f "$dir"/*.whl  # one version of each: two stop the whole install there
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform any -d "$dir" "${pins[@]}"
echo "wheels in $dir ($(du -sh "$dir" | cut -f1)):"
for wheel in "$dir"/*.whl; do
  needs="$(unzip -p "$wheel" '*.dist-info/METADATA' | sed -n 's/^Requires-Dist: //p' | grep -v 'extra ==' \
           | sed 's/[ ;<>=!~(\[].*//' | sort -u | tr '\n' ' ')"
  echo "  $(basename "$wheel")  needs: ${needs:-nothing}"
done
