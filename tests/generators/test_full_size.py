"""The real-size code path: SD1.5's full architecture (random weights) runs a denoising step."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def test_full_size_sd15_architecture_runs_one_step_at_64_px(tmp_path: Path) -> None:
    import torch

    from forgeset.generators.builtin.sd import build_sd15_random

    pipe = build_sd15_random(tmp_path)
    parameters = sum(p.numel() for p in pipe.unet.parameters())
    assert 859_000_000 < parameters < 860_000_000  # SD1.5's UNet: 859.5M
    pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        images = pipe(
            prompt=["a photo of a cat"],
            num_inference_steps=1,
            guidance_scale=7.5,
            height=64,
            width=64,
            generator=[torch.Generator("cpu").manual_seed(1)],
            output_type="np",
        ).images
    assert images.shape == (1, 64, 64, 3) and np.isfinite(images).all()
