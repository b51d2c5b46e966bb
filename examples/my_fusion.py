"""An example fusion method from outside mafs-bench: late fusion of the pooled embeddings.

Benchmark it with ``mafs-bench run examples/my_fusion.yaml`` (run from this folder's parent, so
that ``examples`` is importable; any module on ``sys.path`` works). See the README section
"Benchmark your own fusion method".
"""

import torch
from torch import nn

import mafs_bench


class LateFusion(mafs_bench.FusionMethod):
    """ITM logits from an MLP over [v * t, |v - t|] of the image and caption embeddings;
    ranks by ITM match logit + ITC similarity (BLIP's rule)."""

    network = "late_fusion_mlp"  # methods with the same network and options share trained weights

    def __init__(self, image_width: int, text_width: int, embed_dim: int = 128, hidden: int = 256) -> None:
        super().__init__(image_width, text_width, embed_dim=embed_dim, hidden=hidden)
        self.mlp = nn.Sequential(nn.Linear(2 * embed_dim, hidden), nn.GELU(), nn.Linear(hidden, 2))

    def prepare_images(self, feats):  # per image, once: (N, D) L2-normalised embeddings
        return {"v": feats.emb}

    def prepare_texts(self, feats):  # per caption, once: (M, D)
        return {"t": feats.emb}

    def pair_forward(self, img, txt, signals):  # img["v"]: (G, D); txt["t"]: (G, C, D)
        v, t = img["v"][:, None].expand_as(txt["t"]), txt["t"]
        logits = self.mlp(torch.cat([v * t, (v - t).abs()], dim=-1))  # (G, C, 2): [no-match, match]
        return mafs_bench.PairOutput(itm_logits=logits)

    def score(self, out, itc):
        return out.match_logit + itc
