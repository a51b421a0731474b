#!/usr/bin/env bash
# pyiqa for the opt-in metrics musiq, maniqa and clipiqa (benchmark/metrics/iqa.py), with only what they import:
# pyiqa itself and openai-clip without their declared dependencies (pyiqa declares about 30 packages, 860 MB:
# bitsandbytes, tensorboard, facexlib, linters...), then opencv, addict, einops and a setuptools with pkg_resources. `pip install -e ".[iqa]"`
# installs pyiqa with everything it declares instead. CI runs this, so the metrics' tests run there.
set -euo pipefail
# openai-clip 1.0.1 (the `clip` that pyiqa imports for CLIP-IQA) imports pkg_resources, gone from setuptools 82
python -m pip install -q opencv-python-headless addict einops "setuptools<82"
# pip then reports pyiqa's declared dependencies that are left out as conflicts (exit status 0): the point here
python -m pip install -q --no-deps "pyiqa>=0.1.16,<0.2" "openai-clip>=1.0" 2>&1 \
    | { grep -v "dependency resolver\|requires\|WARNING: Location" || true; }
python -W ignore -c "import pyiqa, clip, cv2, addict, einops" && echo "pyiqa $(python -c 'import pyiqa; print(pyiqa.__version__)') ready for musiq, maniqa, clipiqa"
