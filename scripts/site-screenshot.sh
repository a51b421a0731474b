#!/usr/bin/env bash
# The README's picture of the report site's gallery, remade from nothing: three methods on one prompt on the
# tiny profile (one step per stage, a 256×512 image each, seconds on a CPU), the report with its site, and
# headless Chromium's screenshot of the item's page, zoomed 3× on a tile corner with stage II's tile grid on
# (the page's #zoom=…&at=…&grid link), reduced to 256 colours so that it stays small.
#   bash scripts/site-screenshot.sh [RUNS_DIR] [OUT_PNG]    (defaults: runs-site-screenshot, docs/site-gallery.png)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-runs-site-screenshot}
out=${2:-docs/site-gallery.png}
prompt="a lighthouse on a cliff at dusk"
common=(--prompt "$prompt" --size 256x512 --steps 1 --runs "$runs" --no-progress)
python -m benchmark run --method sr-plus "${common[@]}"
for method in sr-tile asd; do  # 128-px tiles (32 latent px of the x4 upscaler): a grid on a small image
    python -m benchmark run --method "$method" "${common[@]}" --sr-steps 1 --tile 32 --offset-range 16
done
python -m benchmark report --runs "$runs"
chromium=$(command -v chromium || command -v chromium-browser || command -v google-chrome)
shot=$(mktemp --suffix=.png)
"$chromium" --headless=new --no-sandbox --disable-gpu --hide-scrollbars --window-size=1200,780 \
    --virtual-time-budget=4000 --screenshot="$shot" \
    "file://$(realpath "$runs")/reports/site/item-tiny-0000.html#zoom=3&at=256,128&grid" 2>/dev/null
python - "$shot" "$out" <<'PY'
import sys
from PIL import Image
Image.open(sys.argv[1]).convert("RGB").quantize(256).save(sys.argv[2], optimize=True)
PY
rm -f "$shot"
echo "wrote $out"
