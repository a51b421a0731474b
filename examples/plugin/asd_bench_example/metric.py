"""``sharpness``: the variance of the Laplacian of each image's Y channel, averaged over the run.

A classic no-reference blur measure (Pech-Pacheco et al., ICPR 2000): a blurred image has
weak second derivatives, so a lower value means a blurrier image. It needs no reference and
no network, so it applies to every method. Scale: 8-bit luma in [16, 235], 4-neighbour
Laplacian (scipy.ndimage.laplace).
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import laplace

from benchmark.metrics import y_channel
from benchmark.metrics.registry import MetricValue, register_metric


@register_metric(applies_to=("text-to-image", "super-resolution"), column="sharpness↑", digits=1,
                 higher_is_better=True, tolerance={"rel": 0.02})
def sharpness(context) -> MetricValue:
    values = [float(laplace(y_channel(path)).var()) for path in context.images]
    return MetricValue(float(np.mean(values)), {"library": "scipy.ndimage.laplace", "mode": "variance of the "
                       "Laplacian of BT.601 luma in [16, 235]", "model": None, "pretrained": None,
                       "random_weights": False}, per_image=values)
