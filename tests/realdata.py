"""Builders of the things real-data tests run on: tiny pretrained-model folders with random
weights in the formats real weights come in, and a tiny COCO-style Karpathy folder.

* :func:`open_clip_local_dir`: open_clip's ``local-dir:`` format (``open_clip_config.json`` with
  ``model_cfg`` / ``preprocess_cfg``, ``open_clip_model.safetensors``);
* :func:`hf_clip_folder`, :func:`hf_blip_itm_folder`: ``save_pretrained`` folders of a
  ``CLIPModel`` (CLIPTokenizer from a vocab.json + merges.txt written here) and a
  ``BlipForImageTextRetrieval`` (BertTokenizer from a vocab.txt written here), with processors;
* :func:`karpathy_folder`: ``dataset_coco.json`` with train / restval / val / test images of
  coloured shapes and captions made of :data:`WORDS`.

Everything is random-init and seeded: the code path is the one real weights take, the numbers
mean nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220), "yellow": (230, 220, 40)}
SHAPES = ("circle", "square", "triangle")
PLACES = ("left", "right", "top", "bottom")
WORDS = ("a", "an", "the", "photo", "picture", "of", "on", "in", "with", "and", "small", "large", "shape",
         *COLOURS, *SHAPES, *PLACES)
IMAGE_SIZE = 32


def _scene(rng: np.random.Generator, size: int = 48) -> tuple[np.ndarray, list[str]]:
    """A grey image with one coloured shape, and five captions of it."""
    colour, shape, place = rng.choice(list(COLOURS)), rng.choice(SHAPES), rng.choice(PLACES)
    img = np.full((size, size + 8, 3), 128, np.uint8) + rng.integers(0, 20, (size, size + 8, 3), dtype=np.uint8)
    cy, cx = {"left": (size // 2, size // 4), "right": (size // 2, 3 * size // 4), "top": (size // 4, size // 2),
              "bottom": (3 * size // 4, size // 2)}[place]
    yy, xx = np.mgrid[:size, : size + 8]
    r = size // 6
    mask = {"circle": (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r, "square": (abs(yy - cy) <= r) & (abs(xx - cx) <= r),
            "triangle": (yy - cy <= r) & (yy - cy >= -r) & (abs(xx - cx) <= (yy - cy + r) / 2)}[shape]
    img[mask] = COLOURS[colour]
    captions = [f"a {colour} {shape} on the {place}", f"a photo of a {colour} {shape}",
                f"the {colour} {shape} on the {place}", f"a small {colour} shape on the {place}",
                f"a picture of a {shape} in {colour}"]
    return img, captions


def karpathy_folder(root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """A COCO-style Karpathy folder: ``dataset_coco.json``, ``train2014/`` and ``val2014/`` PNGs.

    ``counts``: images per split (default train 48, restval 16, val 4, test 12), interleaved in
    the file as in the real one."""
    counts = counts or {"train": 48, "restval": 16, "val": 4, "test": 12}
    rng = np.random.default_rng(seed)
    order = [s for i in range(max(counts.values())) for s in counts if i < counts[s]]
    records = []
    for n, split in enumerate(order):
        folder = "train2014" if split == "train" else "val2014"
        (root / folder).mkdir(parents=True, exist_ok=True)
        img, captions = _scene(rng)
        name = f"COCO_{folder}_{n:012d}.png"
        Image.fromarray(img).save(root / folder / name)
        records.append({"split": split, "filepath": folder, "filename": name, "imgid": n, "cocoid": 1000 + n,
                        "sentences": [{"raw": c, "tokens": c.split(), "imgid": n, "sentid": 5 * n + j}
                                      for j, c in enumerate(captions)]})
    (root / "dataset_coco.json").write_text(json.dumps({"images": records, "dataset": "coco"}))
    return root


TINY_OPEN_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": IMAGE_SIZE, "layers": 2, "width": 48, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def open_clip_local_dir(folder: Path, seed: int = 0) -> Path:
    """An open_clip ``local-dir:`` folder of a tiny random ViT CLIP (open_clip's own tokenizer)."""
    import open_clip
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = open_clip.CLIP(**TINY_OPEN_CLIP)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")
    (folder / "open_clip_config.json").write_text(json.dumps({
        "model_cfg": TINY_OPEN_CLIP,
        "preprocess_cfg": {"size": IMAGE_SIZE, "mean": [0.48145466, 0.4578275, 0.40821073],
                           "std": [0.26862954, 0.26130258, 0.27577711], "interpolation": "bicubic",
                           "resize_mode": "shortest"}}))
    return folder


def _clip_tokenizer_files(folder: Path) -> None:
    """vocab.json + merges.txt of a byte-level BPE that spells every word of :data:`WORDS` as one token."""
    from open_clip.tokenizer import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    merges: list[str] = []
    for word in WORDS:
        toks = [*word[:-1], word[-1] + "</w>"]
        while len(toks) > 1:
            merge = f"{toks[0]} {toks[1]}"
            if merge not in merges:
                merges.append(merge)
            vocab.setdefault(toks[0] + toks[1], len(vocab))
            toks = [toks[0] + toks[1], *toks[2:]]
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def hf_clip_folder(folder: Path, seed: int = 0) -> Path:
    """A ``save_pretrained`` folder of a tiny random ``CLIPModel`` and its processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    tok_dir = folder / "_tokenizer_src"
    tok_dir.mkdir(exist_ok=True)
    _clip_tokenizer_files(tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(str(tok_dir))
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    bos = tokenizer.convert_tokens_to_ids("<|startoftext|>")
    config = CLIPConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 24, "eos_token_id": eos, "bos_token_id": bos,
                     "pad_token_id": eos},
        vision_config={"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": IMAGE_SIZE, "patch_size": 8},
        projection_dim=32)
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(str(folder))
    image_processor = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE},
                                         crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(folder))
    for f in tok_dir.iterdir():
        f.unlink()
    tok_dir.rmdir()
    return folder


def hf_blip_itm_folder(folder: Path, seed: int = 0) -> Path:
    """A ``save_pretrained`` folder of a tiny random ``BlipForImageTextRetrieval`` and its processor."""
    from transformers import BertTokenizer, BlipConfig, BlipForImageTextRetrieval, BlipImageProcessor, BlipProcessor

    folder.mkdir(parents=True, exist_ok=True)
    tok_dir = folder / "_tokenizer_src"
    tok_dir.mkdir(exist_ok=True)
    (tok_dir / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, ",", "."]) + "\n")
    tokenizer = BertTokenizer.from_pretrained(str(tok_dir))
    config = BlipConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 40, "encoder_hidden_size": 48,
                     "pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.cls_token_id,
                     "sep_token_id": tokenizer.sep_token_id},
        vision_config={"hidden_size": 48, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": IMAGE_SIZE, "patch_size": 8},
        image_text_hidden_size=24)
    torch.manual_seed(seed)
    BlipForImageTextRetrieval(config).save_pretrained(str(folder))
    BlipProcessor(image_processor=BlipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
                  tokenizer=tokenizer).save_pretrained(str(folder))
    for f in tok_dir.iterdir():
        f.unlink()
    tok_dir.rmdir()
    return folder


def fake_hub_cache(cache: Path, repo: str, files: Path, revision: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """Put the files of folder ``files`` into a Hugging Face hub cache layout at ``cache`` as repo
    ``repo`` (``models--org--name/snapshots/<revision>/`` and ``refs/main``), as a download would."""
    base = cache / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / revision
    snap.mkdir(parents=True, exist_ok=True)
    for f in files.iterdir():
        if f.is_file():
            (snap / f.name).write_bytes(f.read_bytes())
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / "main").write_text(revision)
    return snap
