"""The `adversarial` stage: L-inf PGD or FGSM, targeted to "real", against surrogate detectors.

Each attacked sample is a new fake with `parent_key` (the clean fake). Its `ops` record the
surrogates (checkpoint sha256), eps, steps, step size, the achieved L-inf and L2, SSIM to the
parent, and the surrogates' mean fake score before and after. Presets: `raid` (eps 32/255, 10
steps, step 0.05, no random start, JPEG q75 afterwards, as RAID does) and `small-eps` (4/255).
"""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from forgeset.core.naming import NAME_PATTERN
from forgeset.core.strict_model import StrictModel

ATTACK_PRESETS: dict[str, dict[str, Any]] = {
    "raid": {
        "attack": "pgd",
        "eps": 32 / 255,
        "steps": 10,
        "step_size": 0.05,
        "random_start": False,
        "reencode": "jpeg75",
    },
    "small-eps": {
        "attack": "pgd",
        "eps": 4 / 255,
        "steps": 10,
        "step_size": 1 / 255,
        "random_start": True,
        "reencode": "none",
    },
}


class AdversarialParams(StrictModel):
    """An attack on the fakes; a `preset` fills the attack fields in the resolved spec."""

    name: str | None = Field(None, pattern=NAME_PATTERN, description="used in keys; default adv-<preset|attack>")
    preset: Literal[tuple(ATTACK_PRESETS)] | None = None  # type: ignore[valid-type]
    surrogates: list[str] = Field(min_length=1, description="detector checkpoints (forgeset validate writes them)")
    attack: Literal["pgd", "fgsm"] = "pgd"
    eps: float = Field(8 / 255, ge=0.0, le=1.0, description="L-inf budget, in [0, 1] pixel units")
    steps: int = Field(10, ge=1, le=1000)
    step_size: float = Field(2 / 255, gt=0.0, le=1.0)
    random_start: bool = False
    reencode: Literal["none", "jpeg75"] = Field("none", description="JPEG q75 after the attack (RAID), or not")
    fraction: float = Field(1.0, gt=0.0, le=1.0, description="share of the (clean) fakes attacked")

    @model_validator(mode="before")
    @classmethod
    def _expand_preset(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("preset"), str) and data["preset"] in ATTACK_PRESETS:
            preset = ATTACK_PRESETS[data["preset"]]
            clashes = [k for k, v in preset.items() if k in data and data[k] != v]
            if clashes:
                raise ValueError(f"preset {data['preset']!r} fixes {clashes}; drop them or the preset")
            data = {**data, **preset}
        return data

    @property
    def stage_name(self) -> str:
        """The name used in keys and the manifest's `perturbation` column."""
        return self.name or f"adv-{self.preset or self.attack}"


@lru_cache(maxsize=8)
def _surrogate(path: str) -> tuple[Any, str]:
    from forgeset.detectors import load_detector

    return load_detector(Path(path)), hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_surrogates(stage: AdversarialParams, base_dir: Path, size: int) -> list[tuple[Any, str]]:
    """(detector, checkpoint sha256) per surrogate; paths are relative to the spec's folder."""
    paths = [Path(p) if Path(p).is_absolute() else base_dir / p for p in stage.surrogates]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise FileNotFoundError(f"surrogate checkpoint not found: {missing[0]}")
    loaded = [_surrogate(str(p.resolve())) for p in paths]
    for path, (detector, _) in zip(paths, loaded, strict=True):
        if detector.size != size:
            raise ValueError(f"surrogate {path} was trained at {detector.size} px; this corpus is {size} px")
    return loaded


def _jpeg75(pixels: np.ndarray) -> np.ndarray:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=75)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def apply_attack(
    stage: AdversarialParams, pixels: np.ndarray, seed: int, surrogates: list[tuple[Any, str]]
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Attack one image; return the adversarial pixels and the op record."""
    import torch
    from skimage.metrics import structural_similarity

    from forgeset.detectors.base import to_tensor

    torch.set_num_threads(1)  # float results (and so bytes) must not depend on the machine's cores
    models = [detector for detector, _ in surrogates]

    def fake_score(batch: torch.Tensor) -> float:
        with torch.no_grad():
            return float(torch.stack([torch.sigmoid(m.logits(batch)) for m in models]).mean())

    x0 = to_tensor(pixels[None])
    before = fake_score(x0)
    adversarial = pixels
    if stage.eps > 0:
        generator = torch.Generator().manual_seed(seed)
        delta = (
            (torch.rand(x0.shape, generator=generator) * 2 - 1) * stage.eps
            if stage.random_start
            else torch.zeros_like(x0)
        )
        real = torch.zeros(1)
        for _ in range(1 if stage.attack == "fgsm" else stage.steps):
            delta.requires_grad_(True)
            x = (x0 + delta).clamp(0, 1)
            loss = torch.stack(
                [torch.nn.functional.binary_cross_entropy_with_logits(m.logits(x), real) for m in models]
            ).mean()
            (grad,) = torch.autograd.grad(loss, delta)
            step = stage.eps if stage.attack == "fgsm" else stage.step_size
            delta = (delta.detach() - step * grad.sign()).clamp(-stage.eps, stage.eps)
        moved = ((x0 + delta).clamp(0, 1) * 255).round().squeeze(0).permute(1, 2, 0).numpy()
        budget = int(np.floor(stage.eps * 255 + 1e-6))  # rounding must not leave the eps ball
        adversarial = np.clip(moved, pixels.astype(int) - budget, pixels.astype(int) + budget).astype(np.uint8)
    if stage.reencode == "jpeg75":
        adversarial = _jpeg75(adversarial)
    difference = (adversarial.astype(float) - pixels.astype(float)) / 255.0
    record = {
        "op": "adversarial",
        "stage": stage.stage_name,
        "params": {
            "attack": stage.attack,
            "eps": stage.eps,
            "steps": stage.steps,
            "step_size": stage.step_size,
            "random_start": stage.random_start,
            "reencode": stage.reencode,
            "surrogate_names": [f"{d.params.type}:{sha[:12]}" for d, sha in surrogates],
            "surrogate_sha256": [sha for _, sha in surrogates],
            "linf": round(float(np.abs(difference).max()), 6),
            "l2": round(float(np.sqrt((difference**2).sum())), 6),
            "ssim": round(float(structural_similarity(pixels, adversarial, channel_axis=2, data_range=255)), 6),
            "score_before": round(before, 6),
            "score_after": round(fake_score(to_tensor(adversarial[None])), 6),
        },
    }
    return np.ascontiguousarray(adversarial), [record]
