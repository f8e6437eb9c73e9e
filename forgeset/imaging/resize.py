"""Bring any RGB array to the policy's square size (same rule for every class)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from forgeset.imaging.policy import ImagePolicy

_RESAMPLE = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
}


def fit_to_policy(pixels: np.ndarray, policy: ImagePolicy) -> tuple[np.ndarray, list[dict]]:
    """Center-crop (or stretch) and resize to `policy.size`; return the array and the ops applied."""
    height, width = pixels.shape[:2]
    size = policy.size
    ops: list[dict] = []
    image = Image.fromarray(pixels)
    if policy.resize == "center-crop" and height != width:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        image = image.crop((left, top, left + side, top + side))
        ops.append({"op": "center_crop", "params": {"top": top, "left": left, "size": side}})
    if image.size != (size, size):
        ops.append(
            {
                "op": "resize",
                "params": {"from": [image.size[1], image.size[0]], "to": [size, size], "filter": policy.resample},
            }
        )
        image = image.resize((size, size), _RESAMPLE[policy.resample])
    return np.asarray(image), ops
