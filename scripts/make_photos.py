#!/usr/bin/env python3
"""Generate realistic benchmark/test photos from the two photos in the scikit-learn wheel.

Each photo is a random crop of ``china.jpg`` or ``flower.jpg`` (both 640x427), randomly
flipped, slightly re-exposed, resized to 4:3 between 480x360 and 640x480, with a little
sensor-like noise so that no two files are alike, saved as JPEG quality 90 (~70 KB on
average, like a web-sized camera photo). ``--png`` also writes a lossless PNG twin of the
same pixels. Output is deterministic for a given seed.

    python scripts/make_photos.py OUT_DIR --count 2000 [--png] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

SOURCES = ("china.jpg", "flower.jpg")
QUALITY = 90
MIN_WIDTH, MAX_WIDTH = 480, 640
NOISE_SIGMA = 3.0  # in 8-bit levels: enough to make each file unique, not visibly grainy


def _source_images() -> list[Image.Image]:
    try:
        import sklearn  # noqa: PLC0415
    except ImportError as exc:
        raise SystemExit("make_photos needs scikit-learn (pip install scikit-learn)") from exc
    folder = Path(sklearn.__file__).parent / "datasets" / "images"
    return [Image.open(folder / name).convert("RGB") for name in SOURCES]


def _one_photo(src: Image.Image, rng: np.random.Generator) -> Image.Image:
    sw, sh = src.size
    width = int(rng.integers(MIN_WIDTH // 8, MAX_WIDTH // 8 + 1)) * 8
    height = width * 3 // 4
    # A 4:3 crop covering 55-100% of the source height, anywhere in the frame.
    crop_h = int(sh * rng.uniform(0.55, 1.0))
    crop_w = min(sw, crop_h * 4 // 3)
    left = int(rng.integers(0, sw - crop_w + 1))
    top = int(rng.integers(0, sh - crop_h + 1))
    img = src.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = img.resize((width, height), Image.Resampling.LANCZOS)
    pixels = np.asarray(img, dtype=np.float32) * rng.uniform(0.85, 1.15)
    pixels += rng.normal(0.0, NOISE_SIGMA, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def make_photos(out_dir: str | Path, count: int, png: bool = False, seed: int = 0) -> list[Path]:
    """Write ``count`` JPEGs ``photo_00000.jpg``... (and PNG twins) into ``out_dir``.

    Returns the JPEG paths in order. Same seed, same bytes.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sources = _source_images()
    rng = np.random.default_rng(seed)
    width = max(5, len(str(count - 1)))
    paths: list[Path] = []
    for i in range(count):
        img = _one_photo(sources[int(rng.integers(0, len(sources)))], rng)
        path = out / f"photo_{i:0{width}d}.jpg"
        img.save(path, "JPEG", quality=QUALITY)
        if png:
            img.save(path.with_suffix(".png"), "PNG")
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--png", action="store_true", help="also write a PNG twin of each photo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = make_photos(args.out_dir, args.count, png=args.png, seed=args.seed)
    sizes = [p.stat().st_size for p in paths]
    mean = sum(sizes) / len(sizes) if sizes else 0
    print(f"wrote {len(paths)} JPEGs to {args.out_dir}: mean {mean / 1000:.1f} kB, "
          f"min {min(sizes, default=0) / 1000:.1f} kB, max {max(sizes, default=0) / 1000:.1f} kB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
