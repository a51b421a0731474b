#!/usr/bin/env bash
# The example plugin (examples/plugin) installed as a user would, then run, scored and
# reported on tiny: `bash scripts/example-plugin.sh [FOLDER]` (default runs/example-plugin).
# It goes into a virtual environment that sees this one's packages, so nothing is installed
# here; its entry points register sd21-bicubic and sharpness with no --include.
set -euo pipefail
cd "$(dirname "$0")/.."
folder="${1:-runs/example-plugin}"
mkdir -p "$folder"
python -m venv --system-site-packages "$folder/venv"
"$folder/venv/bin/python" -m pip install -q --no-deps -e examples/plugin
"$folder/venv/bin/python" -m benchmark run --method sd21-bicubic --limit 2 --size 256x384 --steps 2 --runs "$folder/runs"  # and scores it
"$folder/venv/bin/python" -m benchmark report --runs "$folder/runs"
grep -q "^| sd21-bicubic " "$folder/runs/reports/tiny.md"
grep -q "sharpness" "$folder/runs/reports/tiny.md"
echo "example plugin: run, scored (sharpness) and reported -> $folder/runs/reports/tiny.md"
