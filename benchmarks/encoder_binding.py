"""Why VQA on the embedded world stops near 1.8x its prior: what the dual encoder binds.

Probes an encoder of the quickstart (``suites/quickstart.yaml``: world, tokenizer, encoder
config) and, optionally, trains variants of it first, to find which training objective would
let VQA heads answer "what shape is in the top left" (every method scores chance on it):

* ``swap``: on the 400 test images, how often the ITC similarity prefers an image's caption to
  the same caption with one word replaced by another of its kind (colour, size, shape, or a
  position word); 0.5 = the pooled embeddings ignore that kind of word;
* ``question_cos``: mean pairwise cosine of the text tower's end-token state (where it pools)
  over the nine "what shape is in the {position}" questions, each dimension standardised over
  the training questions; near 1 = the question's state does not say which position is asked;
* ``patch_index``: a linear classifier on one image token (400 test images; 300 train, 100
  test; 600 steps) predicting which of the 64 patches it is: whether the image tokens keep position;
* ``shape_at_cell``: a linear head on all frozen image tokens (6000 training images, 400 steps)
  predicting each occupied grid cell's shape on the test images (chance 1/6);
* ``vqa``: clean test accuracy (all 2318 test questions) of ``fixed_sum`` and ``concat_mlp``
  VQA heads trained with the suite's recipe (300 steps, training seed 0) on these features,
  per question type, and the ``prior``.

Variants (``--variant``, each trained from scratch with the suite's encoder recipe, seed 0, and
``--steps`` steps; nothing is cached or shipped):

* ``zoo``: the suite's encoder itself (weights cache or shipped zoo; no training);
* ``itc``: the suite's recipe (``mafs_bench.models.training``) re-run here, at ``--steps``;
* ``hard_batches``: ITC whose batches pair each of 64 random images with one of its 16 nearest
  training images by caption words (tf-idf cosine over each image's captions), so that
  in-batch negatives share most attributes;
* ``caption_loss``: ITC plus a captioning loss (CoCa, Yu et al. 2022): one cross-attention
  decoder layer on the text tower's (causal) token states predicts each next caption word from
  the image tokens, weight 1;
* ``token_alignment``: ITC plus FILIP's token-wise contrastive loss (Yao et al. 2021), weight 1:
  a caption matches an image by the mean, over its word tokens, of each word's best cosine with
  an image token, so each word must find its patch (the package's recipe,
  ``encoder_train.token_alignment``, :class:`mafs_bench.models.training.TokenAlignment`);
* ``conv_stem``: ITC with the patch embedding replaced by three strided convolutions (Xiao et
  al. 2021, "Early convolutions help transformers see better");
* ``supervised_shape``: an upper bound, not a usable recipe: the image tower trained directly
  on each grid cell's shape (the world's scene labels), to show the architecture can learn it.

Usage (about 2 minutes per variant at 340 steps on 2 cores, plus 1 minute of probes)::

    python benchmarks/encoder_binding.py --variant zoo
    python benchmarks/encoder_binding.py --variant hard_batches --steps 1000
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss
from torch import nn

from mafs_bench.data import create_dataset
from mafs_bench.models.backends import create_backend
from mafs_bench.models.encoder import DualEncoder
from mafs_bench.models.fusion import create_fusion
from mafs_bench.models.fusion.blocks import end_token
from mafs_bench.models.training import lr_at, train_encoder
from mafs_bench.models.vqa_training import train_vqa
from mafs_bench.runner import load_suite
from mafs_bench.tasks import create_task
from vqa_setup import vqa_data_and_cell

VARIANTS = ("zoo", "itc", "hard_batches", "caption_loss", "token_alignment", "conv_stem", "supervised_shape")
#: variants trained by the package's own encoder recipe, with their ``token_alignment`` weight
PACKAGE_RECIPE = {"itc": 0.0, "conv_stem": 0.0, "token_alignment": 1.0}


def conv_stem(width: int) -> nn.Module:
    """64x64 pixels -> (width, 8, 8): three strided convolutions instead of one 8x8 patch embedding."""
    return nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1), nn.GELU(), nn.Conv2d(32, 64, 3, 2, 1), nn.GELU(),
                         nn.Conv2d(64, width, 2, 2))


class CaptionHead(nn.Module):
    """One pre-norm decoder layer (cross-attention to image tokens, MLP) and a word classifier."""

    def __init__(self, width: int, vocab: int) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(width), nn.LayerNorm(width), nn.LayerNorm(width)
        self.cross = nn.MultiheadAttention(width, 4, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.out = nn.Linear(width, vocab)

    def forward(self, text_tokens: torch.Tensor, image_tokens: torch.Tensor) -> torch.Tensor:
        h = text_tokens + self.cross(self.norm1(text_tokens), image_tokens, image_tokens, need_weights=False)[0]
        h = h + self.mlp(self.norm2(h))
        return self.out(self.norm3(h))


def caption_neighbours(token_ids: list[torch.Tensor], vocab_size: int, k: int = 16) -> torch.Tensor:
    """(N, k) nearest training images by tf-idf cosine of the words of all their captions."""
    n = len(token_ids)
    words = torch.zeros(n, vocab_size)
    for i, ids in enumerate(token_ids):
        words[i, ids.flatten()] = 1.0
    words[:, :4] = 0.0  # pad, start, end, unknown
    idf = torch.log(n / (1.0 + words.sum(0)))
    x = F.normalize(words * idf, dim=-1)
    out = torch.empty(n, k, dtype=torch.long)
    for s in range(0, n, 2000):
        sim = x[s:s + 2000] @ x.T
        sim[torch.arange(len(sim)), torch.arange(s, s + len(sim))] = -1.0
        out[s:s + 2000] = sim.topk(k, dim=1).indices
    return out


def cell_shapes(world, n: int, shapes: list[str]) -> torch.Tensor:
    """(n, 9) shape index of each grid cell's object, len(shapes) where the cell is empty."""
    y = torch.full((n, 9), len(shapes))
    for i, scene in enumerate(world.scenes[:n]):
        for o in scene.objects:
            y[i, o.row * 3 + o.col] = shapes.index(o.shape)
    return y


def train_variant(variant: str, encoder: DualEncoder, dataset, steps: int) -> None:
    """Train ``encoder`` (freshly initialised) in place with ``variant``'s objective, for the
    variants the package's recipe does not have (``hard_batches``, ``caption_loss``,
    ``supervised_shape``); the others train with :func:`mafs_bench.models.training.train_encoder`."""
    images, captions, _ = dataset.training_data()
    token_ids = [encoder.tokenizer(list(c)) for c in captions]
    n = len(images)
    per_image = torch.tensor([len(c) for c in captions])
    gen = torch.Generator().manual_seed(0)
    extra: list[nn.Parameter] = []
    head = None
    if variant == "caption_loss":
        head = CaptionHead(encoder.clip.text.width, encoder.tokenizer.vocab_size)
        extra = list(head.parameters())
    if variant == "supervised_shape":
        shapes = list(dataset.config.shapes)
        labels = cell_shapes(dataset._train, n, shapes)
        head = nn.Linear(64 * encoder.clip.visual.transformer.width, 9 * (len(shapes) + 1))
        extra = list(head.parameters())
    neighbours = caption_neighbours(token_ids, encoder.tokenizer.vocab_size) if variant == "hard_batches" else None
    opt = torch.optim.AdamW(list(encoder.parameters()) + extra, lr=2e-3, weight_decay=0.1)
    loss_fn = ClipLoss()
    encoder.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, 40, 2e-3)
        if neighbours is not None:  # 64 anchors, each with one near neighbour
            anchors = torch.randperm(n, generator=gen)[:64]
            partners = neighbours[anchors, torch.randint(neighbours.shape[1], (64,), generator=gen)]
            idx = torch.unique(torch.cat([anchors, partners]))  # a repeated image would be its own negative
        else:
            idx = torch.randperm(n, generator=gen)[:128]
        pick = (torch.rand(len(idx), generator=gen) * per_image[idx]).long()
        ids = torch.stack([token_ids[i][j] for i, j in zip(idx.tolist(), pick.tolist())])
        with encoder.autocast():
            v, v_tokens = encoder.forward_images(encoder.preprocess(images[idx.numpy()]))
            if variant == "supervised_shape":
                logits = head(v_tokens.float().flatten(1)).view(len(idx) * 9, -1)
                loss = F.cross_entropy(logits.float(), labels[idx].reshape(-1))
            else:
                t, t_tokens = encoder.forward_texts(ids)
                loss = loss_fn(F.normalize(v.float(), dim=-1), F.normalize(t.float(), dim=-1), encoder.logit_scale)
                if variant == "caption_loss":  # position i predicts word i + 1 (the text tower is causal)
                    words = head(t_tokens[:, :-1], v_tokens).float()
                    loss = loss + F.cross_entropy(words.reshape(-1, words.shape[-1]), ids[:, 1:].reshape(-1), ignore_index=0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            encoder.clip.logit_scale.clamp_(0, math.log(100))
    encoder.eval()


def swap_preference(encoder: DualEncoder, world, kinds: dict[str, list[str]]) -> dict[str, float]:
    """Per word kind: share of test images whose first caption beats its one-word-replaced copy."""
    rng = np.random.default_rng(0)
    image_emb = encoder.encode_images(world.images).emb
    out = {}
    for kind, words in kinds.items():
        true, false, rows = [], [], []
        for i, caps in enumerate(world.captions):
            tokens = caps[0].split()
            where = [j for j, t in enumerate(tokens) if t in words]
            if not where:
                continue
            j = where[rng.integers(len(where))]
            other = [w for w in words if w != tokens[j]]
            swapped = list(tokens)
            swapped[j] = other[rng.integers(len(other))]
            true.append(caps[0]), false.append(" ".join(swapped)), rows.append(i)
        v = image_emb[rows]
        out[kind] = float(((v * encoder.encode_texts(true).emb).sum(1) >
                           (v * encoder.encode_texts(false).emb).sum(1)).float().mean())
    return out


def linear_probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, classes: int,
                 steps: int = 400, groups: int = 1, lr: float = 1e-3, batch: int = 256) -> torch.Tensor:
    """Standardised features -> a linear classifier (Adam, minibatches, seed 0); test predictions."""
    mean, std = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    torch.manual_seed(0)
    layer = nn.Linear(x_train.shape[1], classes * groups)
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=1e-4)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(len(x_train), (batch,), generator=gen)
        loss = F.cross_entropy(layer(x_train[idx]).view(-1, classes), y_train[idx].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return layer(x_test).view(len(x_test), groups, classes).argmax(-1).squeeze(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="suites/quickstart.yaml")
    parser.add_argument("--variant", choices=VARIANTS, default="zoo")
    parser.add_argument("--steps", type=int, default=340)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vqa-steps", type=int, default=None, help="VQA head steps (default: the suite's recipe)")
    parser.add_argument("--save", default=None, help="write the trained encoder's state dict here (torch.save)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    suite = load_suite(args.suite)
    dataset = create_dataset(suite.dataset.name, **suite.dataset.options)
    backend = create_backend(suite.backend.name, **{"seed": suite.seed, **suite.backend.options})
    encoder = backend.build(dataset, [], torch.device("cpu"), lambda d, t: (lambda *a: None), [0],
                            {"retrieval": []}).encoder
    start = time.time()
    if args.variant != "zoo":
        torch.manual_seed(0)
        encoder = DualEncoder(backend.encoder_config, encoder.tokenizer, precision=encoder.precision)
        if args.variant == "conv_stem":
            encoder.clip.visual.conv1 = conv_stem(encoder.clip.visual.transformer.width)
        if args.variant in PACKAGE_RECIPE:  # the package's training, with or without token alignment
            images, captions, _ = dataset.training_data()
            recipe = replace(backend.encoder_train, steps=args.steps, token_alignment=PACKAGE_RECIPE[args.variant])
            train_encoder(encoder, images, captions, recipe)
        else:
            train_variant(args.variant, encoder, dataset, args.steps)
    trained = time.time() - start
    if args.save:
        torch.save(encoder.state_dict(), args.save)
    cfg, world, train_world = dataset.config, dataset._base, dataset._train
    shapes = list(cfg.shapes)

    kinds = {"colour": list(cfg.colour_names), "size": list(cfg.sizes), "shape": shapes,
             "position": ["top", "bottom", "left", "right"]}
    swap = swap_preference(encoder, world, kinds)

    train = dataset.train_split()
    q = encoder.encode_texts(train.questions[:20000])
    ends = end_token(q.tokens, q.mask)[:, 0]
    positions = [p for row in cfg.position_names for p in row]
    q9 = encoder.encode_texts([f"what shape is in the {p}" for p in positions])
    z = F.normalize((end_token(q9.tokens, q9.mask)[:, 0] - ends.mean(0)) / (ends.std(0) + 1e-6), dim=-1)
    cos = z @ z.T
    question_cos = float(cos[~torch.eye(9, dtype=torch.bool)].mean())

    test_tokens = encoder.encode_images(world.images).tokens  # (400, 64, W)
    n_img, n_patch, width = test_tokens.shape
    patch = torch.arange(n_patch).repeat(n_img)
    flat = test_tokens.reshape(-1, width)
    split = 300 * n_patch
    pred = linear_probe(flat[:split], patch[:split], flat[split:], n_patch, steps=600, lr=1e-2, batch=1024)
    patch_index = float((pred == patch[split:]).float().mean())

    y_train, y_test = cell_shapes(train_world, 6000, shapes), cell_shapes(world, len(world.scenes), shapes)
    x_train = encoder.encode_images(train_world.images[:6000]).tokens.flatten(1)
    pred = linear_probe(x_train, y_train, test_tokens.flatten(1), len(shapes) + 1, groups=9)
    occupied = y_test < len(shapes)
    shape_at_cell = float((pred[occupied] == y_test[occupied]).float().mean())

    print(f"variant {args.variant}, steps {args.steps if args.variant != 'zoo' else '-'}, "
          f"trained in {trained:.0f} s")
    print("swap preference (0.5 = ignores the word): " + ", ".join(f"{k} {v:.3f}" for k, v in swap.items()))
    print(f"question_cos {question_cos:.3f}   patch_index {patch_index:.3f}   shape_at_cell {shape_at_cell:.3f}")

    space, data, cell = vqa_data_and_cell(encoder, dataset, backend, suite.dataset.domain)
    task = create_task("vqa")
    for name in ("prior", "fixed_sum", "concat_mlp"):
        torch.manual_seed(0)
        method = create_fusion(name, int(backend.encoder_config["vision_cfg"]["width"]),
                               int(backend.encoder_config["text_cfg"]["width"]), **backend.method_options.get(name, {}))
        method.setup_answers(space, int(backend.encoder_config["embed_dim"]))
        recipe = replace(backend.vqa_train, seed=0)
        train_vqa(method, data, recipe if args.vqa_steps is None else replace(recipe, steps=args.vqa_steps))
        metrics = task.evaluate(cell, method.eval()).metrics
        per_type = " ".join(f"{k[len('accuracy_'):]} {v:.2f}" for k, v in metrics.items() if k.startswith("accuracy_"))
        print(f"vqa {name:10s} accuracy {metrics['accuracy']:.3f} | {per_type}", flush=True)


if __name__ == "__main__":
    main()
