"""Benchmark: GPU (or CPU) throughput of text-to-image generation, plain diffusers against forgeset.

Measured on the same model, size, steps, guidance and dtype:
  (a) a plain diffusers loop (what a researcher's script does) at batch 1 and at its best batch;
  (b) forgeset's generator stage alone (DiffusersText2Image.generate on planned batches);
  (c) `forgeset build dataset` end to end (plan, generate, encode PNG, write shards, finalize);
and each against the FLOP bound: FLOPs per image (UNet steps with CFG plus the VAE decode, counted
with torch.utils.flop_counter) over the device's dense bf16/fp16 peak.

    python bench/gpu_throughput.py            # SD1.5- and SDXL-sized random weights, fp16, 25 steps, CUDA
    python bench/gpu_throughput.py --tiny     # builtin tiny-sd and tiny-sdxl on the CPU, a few seconds

The full run builds `builtin:sd15-random` (512 px) and `builtin:sdxl-random` (1024 px): the real
architectures at full size with random weights, so the real checkpoints' FLOPs, nothing
downloaded. Prints one JSON line per measurement, each tagged with its model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

PROMPTS = ["a photo of a cat", "a photo of a dog", "a photo of a car", "a photo of a house"]
PEAK_FLOPS = {"cuda": 790e12}  # dense bf16/fp16 of an H100/H200, as ../shared/bench assumes


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def plain(model_dir: Path, device: str, dtype: Any, size: int, steps: int, batches: list[int], reps: int) -> float:
    """The plain loop at each batch size; returns the best images/s."""
    import torch
    from diffusers import AutoPipelineForText2Image

    pipe = AutoPipelineForText2Image.from_pretrained(str(model_dir), dtype=dtype, use_safetensors=True).to(device)
    pipe.set_progress_bar_config(disable=True)
    best = 0.0
    for batch in batches:
        kwargs = {"num_inference_steps": steps, "guidance_scale": 7.5, "height": size, "width": size}
        prompts = (PROMPTS * batch)[:batch]
        pipe(prompts, output_type="np", **kwargs)  # warm-up
        _sync(device)
        start = time.perf_counter()
        for rep in range(reps):
            generators = [torch.Generator("cpu").manual_seed(rep * batch + i) for i in range(batch)]
            pipe(prompts, generator=generators, output_type="np", **kwargs)
        _sync(device)
        rate = batch * reps / (time.perf_counter() - start)
        best = max(best, rate)
        emit(what="plain_diffusers", model=model_dir.name, batch=batch, images_per_s=round(rate, 3))
    return best


def flops_per_image(model_dir: Path, device: str, dtype: Any, size: int, steps: int) -> float:
    """UNet with CFG (batch 2) per step times steps, plus one VAE decode."""
    import torch
    from diffusers import AutoPipelineForText2Image
    from torch.utils.flop_counter import FlopCounterMode

    pipe = AutoPipelineForText2Image.from_pretrained(str(model_dir), dtype=dtype, use_safetensors=True).to(device)
    factor = pipe.vae_scale_factor
    latents = torch.randn(2, 4, size // factor, size // factor, device=device, dtype=dtype)
    config = pipe.unet.config
    context = torch.randn(2, 77, config.cross_attention_dim, device=device, dtype=dtype)
    extra = {}
    if config.addition_embed_type == "text_time":  # SDXL: pooled text and size/crop conditioning
        pooled = config.projection_class_embeddings_input_dim - 6 * config.addition_time_embed_dim
        extra["added_cond_kwargs"] = {
            "text_embeds": torch.randn(2, pooled, device=device, dtype=dtype),
            "time_ids": torch.randn(2, 6, device=device, dtype=dtype),
        }
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        pipe.unet(latents, 10, encoder_hidden_states=context, **extra)
    unet = counter.get_total_flops()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        pipe.vae.decode(latents[:1] / pipe.vae.config.scaling_factor)
    return float(unet * steps + counter.get_total_flops())


def stage(
    model: str, dtype_name: str, size: int, steps: int, batch: int, count: int, device: str, fast: bool = False
) -> float:
    """forgeset's generator stage alone, on planned batches (`fast`: channels_last and regional compile)."""
    from forgeset.generators import GenerationJob
    from forgeset.generators.text2image import DiffusersText2Image

    params = DiffusersText2Image.Params(
        model=model,
        count=count,
        steps=steps,
        guidance=7.5,
        batch_size=batch,
        dtype=dtype_name,
        device=device,
        channels_last=fast,
        compile=fast,
    )
    generator = DiffusersText2Image(params, Path("."), image_size=size)
    generator.setup()
    jobs = [GenerationJob(f"k-{i}", seed=i, prompt=PROMPTS[i % len(PROMPTS)]) for i in range(count)]
    generator.generate(jobs[:batch])  # warm-up
    _sync(device)
    start = time.perf_counter()
    for first in range(0, count, batch):
        generator.generate(jobs[first : first + batch])
    _sync(device)
    rate = count / (time.perf_counter() - start)
    emit(
        what="forgeset_stage_compiled" if fast else "forgeset_stage",
        model=model,
        batch=batch,
        images_per_s=round(rate, 3),
        warmup_s=generator.warmup_s,
    )
    return rate


def end_to_end(model: str, dtype_name: str, size: int, steps: int, batch: int, count: int, executor: str) -> float:
    """`forgeset build dataset` on a generate-only spec, timed from the call to the written index."""
    from forgeset.builders.build import build_dataset
    from forgeset.builders.executors import LocalExecutor, RayExecutor
    from forgeset.builders.spec import load_spec

    folder = Path(tempfile.mkdtemp(prefix="forgeset-bench-"))
    spec = {
        "name": "bench",
        "image": {"size": size},
        "shards": {"size": max(batch * 4, 16)},
        "splits": {"train": 1.0, "val": 0.0, "test": 0.0},
        "prompts": {"type": "templates", "templates": ["a photo of a {}"], "classes": ["cat", "dog", "car", "house"]},
        "generate": [
            {"type": "text2image", "model": model, "count": count, "steps": steps, "guidance": 7.5, "batch_size": batch}
            | {"dtype": dtype_name}
        ],
    }
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
    runner = LocalExecutor() if executor == "local" else RayExecutor(os.cpu_count() or 1)
    start = time.perf_counter()
    result = build_dataset(load_spec(folder / "spec.yaml"), folder / "out", executor=runner)
    rate = result.index["samples"] / (time.perf_counter() - start)
    emit(
        what="forgeset_build_end_to_end",
        executor=executor,
        samples=result.index["samples"],
        images_per_s=round(rate, 3),
    )
    return rate


def run(model: str, size: int, steps: int, batches: list[int], count: int, args: argparse.Namespace) -> None:
    """Every measurement for one model."""
    import torch

    from forgeset.generators.builtin import materialize_builtin

    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    dtype_name = "float16" if device == "cuda" else "float32"
    dtype = getattr(torch, dtype_name)
    model_dir = materialize_builtin(model)
    best_plain = plain(model_dir, device, dtype, size, steps, batches, reps=2)
    best_batch = batches[-1]
    flops = flops_per_image(model_dir, device, dtype, size, steps)
    bound = PEAK_FLOPS[device] / flops if device in PEAK_FLOPS else None
    emit(what="flops_per_image", model=model, flops=flops, bound_images_per_s=round(bound, 3) if bound else None)
    rate_stage = stage(model, dtype_name, size, steps, best_batch, count, device)
    if device == "cuda":
        stage(model, dtype_name, size, steps, best_batch, count, device, fast=True)
    executor = "local" if args.tiny else args.executor
    rate_build = end_to_end(model, dtype_name, size, steps, best_batch, count, executor)
    emit(
        what="summary",
        model=model,
        size=size,
        steps=steps,
        plain_best=round(best_plain, 3),
        stage=round(rate_stage, 3),
        build=round(rate_build, 3),
        build_over_stage=round(rate_build / rate_stage, 3),
        stage_share_of_bound=round(rate_stage / bound, 3) if bound else None,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="builtin tiny models on the CPU (a smoke run)")
    parser.add_argument("--count", type=int, default=None, help="images for the stage and the build")
    parser.add_argument("--executor", choices=["local", "ray"], default="ray")
    parser.add_argument("--only", choices=["sd15", "sdxl"], default=None, help="one model family only")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    emit(
        what="device",
        name=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        torch=torch.__version__,
    )
    if args.tiny:
        plans = {"sd15": ("builtin:tiny-sd", 64, 4, [1, 4, 8], 32), "sdxl": ("builtin:tiny-sdxl", 64, 4, [1, 4], 16)}
    else:
        plans = {
            "sd15": ("builtin:sd15-random", 512, 25, [1, 8, 32], 128),
            "sdxl": ("builtin:sdxl-random", 1024, 25, [1, 8], 32),
        }
    for family, (model, size, steps, batches, count) in plans.items():
        if args.only in (None, family):
            run(model, size, steps, batches, args.count or count, args)


if __name__ == "__main__":
    sys.exit(main())
