"""Images per second for every image corruption on 224x224 photos, single thread.

Usage::

    PYTHONPATH=/tmp/icref .venv/bin/python benchmarks/corruption_speed.py [--size 224] [--n 16]

Measures ``corruptions.apply`` one image at a time (the per-sample path) and, where a corruption
has a ``batch_fn``, ``corruptions.apply_batch`` on the whole stack; the ``path`` column says
whether the corruption runs natively on uint8 (``u8``) or on the engine's float32 copy
(``f32``). If the reference package ``imagecorruptions`` is importable (install it OUTSIDE the
project, e.g. ``pip install --target /tmp/icref --no-deps imagecorruptions``; it is never a
dependency), its images/s, the speed ratio and the geometric-mean ratio over the 15 "common"
corruptions are printed too. Thread counts are pinned to 1 before numpy is imported so numbers are per core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import importlib.util  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import types  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import corruptions  # noqa: E402

cv2.setNumThreads(1)

COMMON = [
    "gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
    "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
    "jpeg_compression",
]
VALIDATION = ["speckle_noise", "gaussian_blur", "spatter", "saturate"]


def load_imagecorruptions() -> types.ModuleType | None:
    """Import the reference ``imagecorruptions`` (1.1.2) on today's numpy / scikit-image, or None.

    1.1.2 predates numpy 2 and scikit-image 0.19, so a few shims are installed first, in this
    process only: ``np.float_``, a ``pkg_resources.resource_filename`` stand-in, and
    ``skimage.filters.gaussian`` accepting the removed ``multichannel`` keyword. The reference
    algorithms themselves are untouched.
    """
    if importlib.util.find_spec("imagecorruptions") is None:
        return None
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
    if importlib.util.find_spec("pkg_resources") is None:
        shim = types.ModuleType("pkg_resources")

        def resource_filename(package: str, rel: str) -> str:
            return os.path.join(os.path.dirname(sys.modules[package].__file__), rel)

        shim.resource_filename = resource_filename  # type: ignore[attr-defined]
        sys.modules["pkg_resources"] = shim
    import skimage.filters

    if not getattr(skimage.filters.gaussian, "_mafs_shim", False):
        original = skimage.filters.gaussian

        def gaussian(image, sigma=1.0, *args, multichannel=None, **kwargs):  # type: ignore[no-untyped-def]
            if multichannel:
                kwargs.setdefault("channel_axis", -1)
            return original(image, sigma, *args, **kwargs)

        gaussian._mafs_shim = True  # type: ignore[attr-defined]
        skimage.filters.gaussian = gaussian
    return importlib.import_module("imagecorruptions")


def test_images(n: int, size: int) -> np.ndarray:
    """``n`` photos from scikit-image's bundled data, resized to ``size`` x ``size`` RGB uint8."""
    from skimage import data

    photos = []
    for name in ("astronaut", "chelsea", "coffee", "rocket", "cat", "immunohistochemistry", "hubble_deep_field", "retina"):
        try:
            img = getattr(data, name)()
        except Exception:  # noqa: BLE001 - a missing optional photo just means fewer distinct ones
            continue
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        photos.append(cv2.resize(np.ascontiguousarray(img[:, :, :3]), (size, size), interpolation=cv2.INTER_AREA))
    return np.stack([photos[i % len(photos)] for i in range(n)])


def rates(fns: list, imgs: np.ndarray, min_time: float = 0.4) -> list[float]:  # type: ignore[type-arg]
    """Images per second of each ``fn(img, k)`` over ``imgs``: the best of several rounds.

    The functions' rounds alternate, so ours and the reference see the same machine load, and
    the fastest round is kept (other processes on a shared machine only ever slow one down).
    """
    for fn in fns:
        for k in range(min(len(imgs), 8)):  # warm caches (kernels, textures, plasma fields)
            fn(imgs[k], k)
    best, spent = [0.0] * len(fns), [0.0] * len(fns)
    while min(spent) < min_time:
        for i, fn in enumerate(fns):
            if spent[i] >= min_time and len(fns) > 1 and spent[i] > 3 * min(spent):
                continue  # a slow reference alone decides how many rounds there are
            start = time.perf_counter()
            for k, img in enumerate(imgs):
                fn(img, k)
            elapsed = time.perf_counter() - start
            spent[i] += elapsed
            best[i] = max(best[i], len(imgs) / elapsed)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--n", type=int, default=8, help="distinct images per timing loop")
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=0.4, help="seconds per measurement")
    parser.add_argument("--only", nargs="*", default=None, help="corruption names to time")
    args = parser.parse_args(argv)

    imgs = test_images(args.n, args.size)
    ic = load_imagecorruptions()
    sev = args.severity
    names = args.only or corruptions.names("image")
    print(f"{args.size}x{args.size} RGB, severity {sev}, 1 thread; images/s"
          + ("" if ic else "  (imagecorruptions not importable: no reference column)"))
    print(f"{'corruption':<18} {'path':>4} {'ours':>9} {'batch':>9} {'imagecorr.':>11} {'ratio':>7}")
    ratios: dict[str, float] = {}
    for name in names:
        ref_fn = None
        if ic is not None and name in COMMON + VALIDATION:
            np.random.seed(0)  # the reference draws from numpy's global RNG

            def ref_fn(img, k, name=name):  # type: ignore[no-untyped-def]
                return ic.corrupt(img, severity=sev, corruption_name=name)

        def ours_fn(img, k, name=name):  # type: ignore[no-untyped-def]
            return corruptions.apply(name, img, sev, seed=0, sample_id=k)

        measured = rates([ours_fn] + ([ref_fn] if ref_fn else []), imgs, args.min_time)
        ours = measured[0]
        batch = ""
        if corruptions.get(name).batch_fn is not None:
            whole = imgs[None]  # one "image" = the whole stack, so rates() counts batches
            per_batch = rates([lambda b, k: corruptions.apply_batch(name, b, sev, seed=0, sample_ids=range(len(b)))], whole, args.min_time)[0]
            batch = f"{per_batch * len(imgs):9.1f}"
        ref = ratio = ""
        if ref_fn is not None:
            r = measured[1]
            ratios[name] = ours / r
            ref, ratio = f"{r:11.1f}", f"{ours / r:6.1f}x"
        path = "u8" if corruptions.get(name).uint8 else "f32"
        print(f"{name:<18} {path:>4} {ours:9.1f} {batch:>9} {ref:>11} {ratio:>7}", flush=True)
    common = [ratios[n] for n in COMMON if n in ratios]
    if common:
        geo = math.exp(sum(math.log(r) for r in common) / len(common))
        slowest = min(common)
        print(f"geometric-mean speed-up over {len(common)} common corruptions: {geo:.1f}x "
              f"(slowest {slowest:.1f}x: {min((r, n) for n, r in ratios.items() if n in COMMON)[1]})")
    if ratios:
        geo_all = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
        print(f"geometric-mean speed-up over all {len(ratios)} ImageNet-C corruptions: {geo_all:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
