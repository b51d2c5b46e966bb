"""Throughput of one retrieval evaluation cell at ViT-B-32 size, stage by stage, on GPU or CPU.

Random-init weights (``open_clip.create_model('ViT-B-32')``, no download) on ``--n`` synthetic
``--image-size`` px images with 5 captions each, through exactly the code a suite runs
(:class:`~mafs_bench.models.backends.open_clip_hub.OpenClipEncoder`, the retrieval task, the
fusion heads at ViT-B-32's token widths; with ``--blip`` also a random-init BLIP-ITM base through
the ``hf`` wrapper and the ``itm_head`` method). Stages:

* ``preprocess``: decoding-free preprocessing of the images in the DataLoader workers alone;
* ``corrupt_torch`` / ``corrupt_numpy``: ``gaussian_noise`` severity 3 on the torch path (on the
  device) and on the numpy engine (a subset of at most 256 images);
* ``encode_images`` / ``encode_texts``: the frozen encoder, preprocessing included;
* ``rerank_<method>``: ITC ranking plus ITM re-ranking of the top ``--k`` in both directions;
* ``train_head_mafs`` (``--train-steps``): training an MA-AFS head on the encoded features under
  the heads' recipe (batch 128).

Prints images/s (captions/s for texts, pairs/s for re-ranking), the GPU's mean and peak
utilisation during each stage (``nvidia-smi``, when present), the seconds one image-corruption
cell costs per stage, and which stage bounds a cell. ``--json PATH`` writes it all.

    python benchmarks/gpu_retrieval.py                      # GPU: N = 5000, the COCO 5k size
    python benchmarks/gpu_retrieval.py --n 8 --device cpu   # a smoke run anywhere
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mafs_bench.models.backends.open_clip_hub import OpenClipEncoder  # noqa: E402
from mafs_bench.models.backends.pretrained import (DEFAULT_METHOD_OPTIONS, image_batches, resolve_batch_size,  # noqa: E402
                                                   resolve_precision, resolve_workers)
from mafs_bench.models.fusion import ReferencePool, create_fusion  # noqa: E402
from mafs_bench.tasks import EncodedCell, create_task  # noqa: E402

WORDS = "a an the photo of dog cat man woman red blue green small large on in with table street car tree".split()


class GpuSampler:
    """Samples ``nvidia-smi`` GPU utilisation every ``period`` seconds while running."""

    def __init__(self, period: float = 0.1) -> None:
        self.period, self.samples, self._stop = period, [], threading.Event()
        self.available = shutil.which("nvidia-smi") is not None and torch.cuda.is_available()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if self.available:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout.split("\n")[0]
                util, mem = (float(x) for x in out.split(","))
                self.samples.append((util, mem))
            except (OSError, ValueError, subprocess.SubprocessError):
                pass
            self._stop.wait(self.period)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict[str, float | None]:
        if not self.samples:
            return {"gpu_util_mean": None, "gpu_util_max": None, "gpu_mem_max_mib": None}
        util = [u for u, _ in self.samples]
        return {"gpu_util_mean": round(float(np.mean(util)), 1), "gpu_util_max": max(util),
                "gpu_mem_max_mib": max(m for _, m in self.samples)}


def timed(device: torch.device, fn: Callable[[], Any]) -> tuple[float, Any, dict[str, float | None]]:
    """Seconds of ``fn()`` (device synchronised), its result and the GPU utilisation meanwhile."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    with GpuSampler() as sampler:
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return seconds, out, sampler.summary()


def synthetic(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, list[str], np.ndarray]:
    """``n`` smooth random uint8 images (size x size) and 5 captions each."""
    rng = np.random.default_rng(seed)
    low = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    images = np.repeat(np.repeat(low, size // 8 + 1, axis=1), size // 8 + 1, axis=2)[:, :size, :size]
    captions = [" ".join(rng.choice(WORDS, rng.integers(6, 14))) for _ in range(5 * n)]
    return np.ascontiguousarray(images), captions, np.repeat(np.arange(n), 5)


def open_clip_encoder(model_name: str, device: torch.device, precision: str, batch: int, workers: int) -> OpenClipEncoder:
    import open_clip

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(model_name)  # random init: no pretrained tag
    return OpenClipEncoder(model, preprocess, open_clip.get_tokenizer(model_name), device, precision, batch, workers)


def blip_encoder(device: torch.device, precision: str, batch: int, workers: int, tmp: Path) -> Any:
    """A random-init BLIP-ITM base (ViT-B/16 at 384 px, BERT-base) behind the hf wrapper."""
    from transformers import BertTokenizer, BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor

    from mafs_bench.models.backends.hf import BLIP_MAX_TEXT, HFBlipEncoder

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    processor = BlipProcessor(BlipImageProcessor(size={"height": 384, "width": 384}), BertTokenizer.from_pretrained(str(tmp)))
    torch.manual_seed(0)
    model = BlipForImageTextRetrieval(BlipConfig())
    return HFBlipEncoder(model, processor, device, precision, batch, workers, BLIP_MAX_TEXT)


def run(args: argparse.Namespace) -> dict[str, Any]:
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    n = args.n or (5000 if device.type == "cuda" else 16)
    precision = resolve_precision(args.precision, device)
    batch = resolve_batch_size(args.batch_size if args.batch_size == "auto" else int(args.batch_size), device)
    workers = resolve_workers(args.workers if args.workers == "auto" else int(args.workers), device)
    images, captions, owner = synthetic(n, args.image_size)
    report: dict[str, Any] = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                              "n_images": n, "n_captions": len(captions), "image_size": args.image_size,
                              "model": args.model, "precision": precision, "batch_size": batch, "num_workers": workers,
                              "k": args.k, "torch": torch.__version__, "stages": {}}
    stages = report["stages"]

    def stage(name: str, items: int, unit: str, fn: Callable[[], Any]) -> Any:
        seconds, out, gpu = timed(device, fn)
        stages[name] = {"seconds": round(seconds, 3), unit: round(items / seconds, 1), **gpu}
        print(f"{name:>22}: {seconds:8.2f} s  {items / seconds:10.1f} {unit}"
              + (f"  GPU util mean {gpu['gpu_util_mean']}% max {gpu['gpu_util_max']}%" if gpu["gpu_util_mean"] is not None else ""),
              flush=True)
        return out

    encoder = open_clip_encoder(args.model, device, precision, batch, workers)
    encoder.encode_images(images[: min(n, 2 * batch)])  # warm-up: kernels, autotuning, workers
    stage("preprocess", n, "images_per_s",
          lambda: sum(1 for _ in image_batches(images, encoder._preprocess, batch, device, workers)))
    import corruptions
    from corruptions import torch_ops

    subset = images[: min(n, 256)]
    stage("corrupt_numpy", len(subset), "images_per_s",
          lambda: corruptions.apply_batch("gaussian_noise", subset, 3, seed=0, sample_ids=np.arange(len(subset))))

    def corrupt_torch() -> np.ndarray:
        x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 255.0
        out = torch_ops.apply_torch("gaussian_noise", x, 3, seed=0, sample_ids=list(range(n)))
        return torch.round(out.clamp(0, 1) * 255.0).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()

    stage("corrupt_torch", n, "images_per_s", corrupt_torch)
    img = stage("encode_images", n, "images_per_s", lambda: encoder.encode_images(images))
    txt = stage("encode_texts", len(captions), "captions_per_s", lambda: encoder.encode_texts(captions))
    cell = EncodedCell(img, txt, owner, float(encoder.logit_scale))
    task = create_task("retrieval", k=args.k, ks=[x for x in (1, 5, 10) if x < args.k] or [1])
    pairs = (n + len(captions)) * args.k
    iw, tw = img.tokens.shape[-1], txt.tokens.shape[-1]
    for name in args.methods:
        torch.manual_seed(0)
        method = create_fusion(name, iw, tw, **DEFAULT_METHOD_OPTIONS.get(name, {}))
        method.fit_reference(ReferencePool(img.emb[:1000].cpu(), txt.emb[:1000].cpu(), img.emb.cpu(), txt.emb.cpu(),
                                           torch.as_tensor(owner), float(encoder.logit_scale)))
        method = method.eval().to(device)
        method.weights_id = None
        stage(f"rerank_{name}", pairs, "pairs_per_s", lambda m=method: task.evaluate(cell, m))
        stages[f"rerank_{name}"]["images_per_s"] = round(n / stages[f"rerank_{name}"]["seconds"], 1)
    if args.train_steps:
        from mafs_bench.models.augment import FeatureStats
        from mafs_bench.models.fusion_training import FusionTrainConfig, FusionTrainData, train_fusion

        owner_t = torch.as_tensor(owner)
        reference = ReferencePool(img.emb[: n // 5], txt.emb[: n // 5 * 5 : 5], img.emb, txt.emb, owner_t,
                                  float(encoder.logit_scale))
        stats_i = FeatureStats.of(img.emb.cpu(), img.tokens[:1000].cpu())
        stats_t = FeatureStats.of(txt.emb.cpu(), txt.tokens[:1000].cpu(), txt.mask[:1000].cpu())
        data = FusionTrainData([img], [txt], owner_t, [torch.nonzero(owner_t == i).flatten() for i in range(n)],
                               stats_i, stats_t, reference, float(encoder.logit_scale))
        cfg = FusionTrainConfig(steps=args.train_steps)
        torch.manual_seed(0)
        head = create_fusion("mafs", iw, tw).to(device)
        stage("train_head_mafs", args.train_steps, "steps_per_s", lambda: train_fusion(head, data, cfg))
    if args.blip:
        blip = blip_encoder(device, precision, batch, workers, Path(args.tmp))
        blip.encode_images(images[: min(n, batch)])
        b_img = stage("blip_encode_images", n, "images_per_s", lambda: blip.encode_images(images))
        b_txt = stage("blip_encode_texts", len(captions), "captions_per_s", lambda: blip.encode_texts(captions))
        method = create_fusion("itm_head", 0, 0, max_pairs=args.itm_pairs).attach(blip.itm_head()).eval()
        b_cell = EncodedCell(b_img, b_txt, owner, float(blip.logit_scale))
        stage("blip_rerank_itm", pairs, "pairs_per_s", lambda: task.evaluate(b_cell, method))
        stages["blip_rerank_itm"]["images_per_s"] = round(n / stages["blip_rerank_itm"]["seconds"], 1)
    # one image-corruption cell: corrupt the images (torch path where supported), encode them, re-rank
    cell_cost = {"corrupt": stages["corrupt_torch"]["seconds"], "encode_images": stages["encode_images"]["seconds"],
                 **{f"rerank_{m}": stages[f"rerank_{m}"]["seconds"] for m in args.methods}}
    if args.blip:
        cell_cost.update(blip_encode_images=stages["blip_encode_images"]["seconds"],
                         blip_rerank_itm=stages["blip_rerank_itm"]["seconds"])
    report["image_cell_seconds"] = {k: round(v, 3) for k, v in cell_cost.items()}
    report["bound_by"] = max(cell_cost, key=cell_cost.get)
    print(f"one image-corruption cell: {sum(cell_cost.values()):.2f} s; bound by {report['bound_by']} "
          f"({cell_cost[report['bound_by']]:.2f} s)")
    return report


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=None, help="images (default 5000 on CUDA, 16 on the CPU)")
    parser.add_argument("--image-size", type=int, default=384, help="synthetic image size in pixels")
    parser.add_argument("--model", default="ViT-B-32", help="open_clip architecture (random init) or local-dir:/path")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--batch-size", default="auto")
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--k", type=int, default=16, help="re-ranked candidates per query")
    parser.add_argument("--methods", nargs="*", default=["mafs", "albef"])
    parser.add_argument("--train-steps", type=int, default=0,
                        help="also time training an MA-AFS head this many steps (batch 128) on the encoded features")
    parser.add_argument("--blip", action="store_true", help="also a random-init BLIP-ITM base through the hf wrapper")
    parser.add_argument("--itm-pairs", type=int, default=1024, help="pairs per BLIP ITM forward pass")
    parser.add_argument("--tmp", default="/tmp/mafs-bench-gpu-retrieval")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args(argv)
    report = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
