"""How long optimizing a generated picture takes, and how much smaller it gets.

Makes PNGs the size Stable Diffusion returns (832 x 1216, gradient plus noise,
which compresses like a photo rather than a flat test card), then runs
``media.imaging.optimize_image`` on each as ``store_image`` would for a
generated picture and for a header.
"""

from __future__ import annotations

import io
import random
import statistics
import time

from PIL import Image, ImageFilter

from bench.stats import percentile, table
from media.imaging import KIND_MAX_SIDE, optimize_image

COUNT = 12
LIMITS = {"max_bytes": 10 * 1024 * 1024, "max_pixels": 40_000_000}


def make_png(seed: int, width: int = 832, height: int = 1216) -> bytes:
    rng = random.Random(seed)
    gradient = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    tint = Image.new("RGB", (width, height), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    base = Image.blend(gradient, tint, 0.5)
    noise = Image.effect_noise((width, height), 40 + seed % 20).convert("RGB")
    picture = Image.blend(base, noise, 0.3).filter(ImageFilter.GaussianBlur(0.6))
    out = io.BytesIO()
    picture.save(out, format="PNG")
    return out.getvalue()


def run() -> dict:
    images = [make_png(seed) for seed in range(COUNT)]
    rows, results = [], {}
    for kind, max_side in KIND_MAX_SIDE.items():
        times, ratios = [], []
        for raw in images:
            started = time.perf_counter()
            result = optimize_image(raw, max_side=max_side, **LIMITS)
            times.append(time.perf_counter() - started)
            ratios.append(result.byte_size / len(raw))
        ms = [t * 1000 for t in times]
        results[kind] = {
            "median_ms": statistics.median(ms),
            "p90_ms": percentile(ms, 90),
            "median_ratio": statistics.median(ratios),
        }
        rows.append(
            (
                kind,
                f"{result.width}x{result.height}",
                f"{statistics.median(len(r) for r in images) / 1024:.0f} KiB",
                f"{statistics.median(ms):.1f} ms",
                f"{percentile(ms, 90):.1f} ms",
                f"{statistics.median(ratios):.3f}",
            )
        )
    print(f"Optimizing {COUNT} generated 832x1216 PNGs (gradient + noise)")
    results = {"count": COUNT, **results}
    print(table(rows, ("kind", "stored size", "PNG in", "median", "p90", "stored/original")))
    return results


if __name__ == "__main__":
    run()
