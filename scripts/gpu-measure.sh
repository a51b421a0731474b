#!/usr/bin/env bash
# Everything this project still has to measure on a GPU, in one command: at most 8 minutes on
# one H200 (benchmark/gpu_measure.py says what, in which order, and what is skipped when time
# runs short). Writes DIR/summary.json, DIR/summary.md, DIR/reports/ and the runs in DIR/runs/.
#
#   scripts/gpu-measure.sh [--out DIR] [--time-budget SECONDS]   # on a CUDA machine (default DIR: runs/gpu-measure)
#   scripts/gpu-measure.sh --dry-run [--out DIR]                 # the same path on a CPU, tiny profile
#
# The machine needs no network and keeps its own torch: run scripts/fetch-wheels.sh beforehand
# where pip works and bring .whl/ with the checkout; those wheels are installed into a folder
# of their own (--no-deps, nothing upgraded) and the project runs from this checkout through
# PYTHONPATH, never installed (pyproject's torch>=2.14 would not hold there). Where $OUT is set
# (the device tool's result folder), the summary, the reports and the run records are copied there.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="runs/gpu-measure"  # under the ignored runs folder: a checkout stays clean
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  [[ "${args[i]}" == "--out" && $((i + 1)) -lt ${#args[@]} ]] && out="${args[i + 1]}"
done
if compgen -G "$repo/.whl/*.whl" > /dev/null; then
  site="${ASD_BENCH_SITE:-/tmp/asd-bench-site}"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --find-links "$repo/.whl" --target "$site" "$repo"/.whl/*.whl
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
export ASD_BENCH_CACHE="${ASD_BENCH_CACHE:-$out/cache}"  # the synthetic set and tiny LoRAs, made offline
cd "$repo"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
status=0
python3 -m benchmark.gpu_measure "$@" || status=$?
if [[ -n "${OUT:-}" && -d "$out" ]]; then
  cp "$out"/summary.json "$out"/summary.md "$OUT"/ 2>/dev/null || true
  (cd "$out" && tar czf "$OUT/gpu-measure-records.tar.gz" --exclude='*.png' --exclude='*.npy' --exclude=cache \
     summary.json summary.md reports runs 2>/dev/null) || true
fi
exit $status
