"""Benchmark: PGD images/s against the small CNN surrogate (CPU here; CUDA when available).

A random-weight small ResNet (the cnn detector's architecture; random weights cost the same FLOPs)
is attacked with L-inf PGD, 10 steps, in batches. Prints one JSON line per (size, batch).

    python bench/attack_throughput.py [--sizes 64 128] [--batches 1 16] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from forgeset.detectors.cnn import small_resnet


def pgd(model: torch.nn.Module, images: torch.Tensor, eps: float, steps: int, step: float) -> torch.Tensor:
    """Targeted-to-real L-inf PGD on a batch (the loop apply_attack runs per image)."""
    delta = torch.zeros_like(images)
    real = torch.zeros(images.shape[0], device=images.device)
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model((images + delta).clamp(0, 1)), real)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() - step * grad.sign()).clamp(-eps, eps)
    return (images + delta).clamp(0, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = small_resnet().to(device).eval()
    name = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    for size in args.sizes:
        for batch in args.batches:
            images = torch.rand(batch, 3, size, size, device=device)
            pgd(model, images, 8 / 255, 2, 2 / 255)  # warm-up
            if device == "cuda":
                torch.cuda.synchronize()
            reps = max(1, 32 // batch)
            start = time.perf_counter()
            for _ in range(reps):
                pgd(model, images, 8 / 255, args.steps, 2 / 255)
            if device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            print(
                json.dumps(
                    {
                        "what": "pgd_small_cnn",
                        "device": name,
                        "size": size,
                        "batch": batch,
                        "steps": args.steps,
                        "images_per_s": round(batch * reps / seconds, 2),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
