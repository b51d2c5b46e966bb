"""Models: tokenizer, encoder from config, weights cache, and the fusion-method contract over the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mafs_bench.models import cache
from mafs_bench.models.encoder import DualEncoder, list_encoder_configs, load_encoder_config
from mafs_bench.models.augment import FeatureStats
from mafs_bench.models.fusion import FUSIONS, FusionMethod, PairSignals, ReferencePool, create_fusion, gather
from mafs_bench.models.encoder import ImageFeatures, TextFeatures
from mafs_bench.models.tokenizer import EOT, PAD, SOT, UNK, WordTokenizer
from mafs_bench.models.fusion_training import FusionTrainConfig, FusionTrainData, train_fusion

#: methods with a trainable fusion network (itm_head runs a backend model's own head: tests/test_realdata.py)
FUSED = [n for n in FUSIONS.names() if FUSIONS.get(n).has_fusion and not FUSIONS.get(n).pretrained_head]


def test_tokenizer_layout_and_unknown_words() -> None:
    tok = WordTokenizer(["a", "red", "circle"], context_length=6)
    ids = tok(["a red circle", "a blue circle", "a red circle a red circle"])
    assert ids.shape == (3, 6)
    assert ids[0].tolist() == [SOT, 4, 5, 6, EOT, PAD]
    assert ids[1].tolist()[2] == UNK
    assert ids[2].tolist()[-1] == EOT  # truncated but still ends with the end token


def test_encoder_from_bundled_config_encodes_both_sides() -> None:
    assert "mafs-tiny-vit" in list_encoder_configs()
    with pytest.raises(ValueError, match="Unknown encoder config"):
        load_encoder_config("nope")
    cfg = load_encoder_config("mafs-tiny-vit")
    cfg["vision_cfg"].update(layers=1, width=32, head_width=16)
    cfg["text_cfg"].update(layers=1, width=32, heads=2)
    cfg["embed_dim"] = 16
    tok = WordTokenizer(["a", "red", "circle"], context_length=8)
    torch.manual_seed(0)
    enc = DualEncoder(cfg, tok).eval()
    imgs = np.random.default_rng(0).integers(0, 256, (3, 48, 48, 3), dtype=np.uint8)  # resized to 64
    f = enc.encode_images(imgs)
    t = enc.encode_texts(["a red circle", "a circle"])
    assert f.emb.shape == (3, 16) and f.tokens.shape == (3, 64, 32)
    assert torch.allclose(f.emb.norm(dim=-1), torch.ones(3))
    assert t.tokens.shape[:2] == t.mask.shape == (2, 5)
    assert t.mask.sum(1).tolist() == [5, 4]


def test_cache_round_trip_and_key_sensitivity(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path))
    cfg = {"a": 1, "b": [1, 2]}
    assert cache.load_weights("x", cfg) is None
    cache.save_weights("x", cfg, {"w": torch.ones(2)}, {"loss": 0.5})
    got = cache.load_weights("x", cfg)
    assert torch.equal(got["state_dict"]["w"], torch.ones(2)) and got["meta"]["loss"] == 0.5
    assert cache.load_weights("x", {"a": 2, "b": [1, 2]}) is None
    assert cache.config_key({"b": [1, 2], "a": 1}) == cache.config_key(cfg)
    assert not list(tmp_path.rglob("*.tmp*"))


def _features(n: int = 6, per: int = 2, width: int = 16, seed: int = 0) -> tuple[ImageFeatures, TextFeatures]:
    g = torch.Generator().manual_seed(seed)
    img = ImageFeatures(torch.nn.functional.normalize(torch.randn(n, width, generator=g), dim=-1), torch.randn(n, 4, width, generator=g))
    m = n * per
    mask = torch.ones(m, 5, dtype=torch.bool)
    mask[1::2, 4:] = False
    txt = TextFeatures(torch.nn.functional.normalize(torch.randn(m, width, generator=g), dim=-1), torch.randn(m, 5, width, generator=g), mask)
    return img, txt


def test_every_registered_method_is_tested() -> None:
    assert set(FUSIONS.names()) == {"clip", "mafs", "fixed_sum", "albef", "blip", "itm_head", "concat_mlp", "gmu", "qmf",
                                    "pdf", "prior"}, "new method: add it to the tests (and to tests/test_vqa.py if it does VQA)"


def _reference(n: int = 12, width: int = 16, seed: int = 3) -> ReferencePool:
    img, txt = _features(n=n, width=width, seed=seed)
    return ReferencePool(img.emb[: n // 2], txt.emb[: n // 2], img.emb, txt.emb, torch.arange(n).repeat_interleave(2), 10.0)


def _fitted(name: str, **options: object) -> FusionMethod:
    """A method with its reference fitted (MA-AFS needs banks before it can score)."""
    method = create_fusion(name, 16, 16, width=16, heads=2, **options)
    method.fit_reference(_reference())
    return method.eval()


@pytest.mark.parametrize("name", FUSED)
def test_fusion_contract_shapes_and_weights(name: str) -> None:
    torch.manual_seed(0)
    method = _fitted(name)
    img, txt = _features()
    ip, tp = method.prepare_images(img), method.prepare_texts(txt)
    images = torch.tensor([0, 3])
    captions = torch.tensor([[0, 1, 5], [2, 7, 11]])
    sig = PairSignals(torch.rand(2, 3))
    out = method.pair_forward(gather(ip, images), gather(tp, captions), sig)
    assert out.itm_logits.shape == (2, 3, 2)
    itc = torch.rand(2, 3)
    assert method.score(out, itc).shape == (2, 3)
    if name == "mafs":
        assert out.alpha is not None
    if out.alpha is not None:
        assert out.alpha.shape == (2, 3, 2)
        assert torch.allclose(out.alpha.sum(-1), torch.ones(2, 3))
    if name in ("mafs", "fixed_sum") and out.alpha is not None:  # weights with the cues behind them
        assert out.cues is not None and out.cues.shape == (2, 3, 5)
        assert torch.equal(out.cues[..., 2], sig.itc)  # agreement is the pair's ITC cosine
        assert ((out.cues[..., :2] >= 0) & (out.cues[..., :2] <= 1)).all()  # normalised entropies
        assert ((out.cues[..., 3:] >= -1) & (out.cues[..., 3:] <= 1 + 1e-6)).all()  # bank agreements: cosines


def test_fixed_sum_is_mafs_without_scheduler() -> None:
    mafs, fixed = create_fusion("mafs", 128, 128), create_fusion("fixed_sum", 128, 128)
    extra = set(dict(mafs.named_parameters())) - set(dict(fixed.named_parameters()))
    assert extra and all(k.startswith("scheduler.") for k in extra)
    assert set(dict(fixed.named_parameters())) < set(dict(mafs.named_parameters()))
    sched = sum(p.numel() for k, p in mafs.named_parameters() if k in extra)
    assert sched / 1_068_673 < 0.01  # under 1% of the embedded model (encoder params) as specified
    cues = torch.rand(4, 1, 5)
    assert torch.allclose(fixed.weights(cues), torch.full((4, 1, 2), 0.5))
    assert torch.allclose(mafs.weights(cues), torch.full((4, 1, 2), 0.5))  # zero-initialised final layer


def test_blip_adds_itc_to_albef_score() -> None:
    torch.manual_seed(0)
    albef = create_fusion("albef", 16, 16, width=16, heads=2)
    blip = create_fusion("blip", 16, 16, width=16, heads=2)
    blip.load_state_dict(albef.state_dict())
    img, txt = _features()
    sig = PairSignals(torch.rand(1, 2))
    with torch.no_grad():
        oa = albef.pair_forward(gather(albef.prepare_images(img), torch.tensor([0])), gather(albef.prepare_texts(txt), torch.tensor([[0, 1]])), sig)
        ob = blip.pair_forward(gather(blip.prepare_images(img), torch.tensor([0])), gather(blip.prepare_texts(txt), torch.tensor([[0, 1]])), sig)
    itc = torch.tensor([[0.3, -0.2]])
    assert torch.allclose(blip.score(ob, itc), albef.score(oa, itc) + itc)
    assert albef.network == blip.network


def _train_data(n: int = 32, dim: int = 16) -> FusionTrainData:
    img, txt = _features(n=n, per=2, width=dim)
    owner = torch.arange(n).repeat_interleave(2)
    # make captions informative: text tokens carry their image's mean token
    txt.tokens = txt.tokens * 0.1 + img.tokens.mean(1)[owner, None, :]
    txt.emb = torch.nn.functional.normalize(img.emb[owner] + 0.1 * txt.emb, dim=-1)
    ref = ReferencePool(img.emb[: n // 4], txt.emb[: n // 2 : 2], img.emb, txt.emb, owner, 10.0)
    return FusionTrainData([img], [txt], owner, [torch.nonzero(owner == i).flatten() for i in range(n)],
                           FeatureStats.of(img.emb, img.tokens), FeatureStats.of(txt.emb, txt.tokens, txt.mask), ref, 10.0)


@pytest.mark.parametrize("name", ["mafs", "albef"])
def test_itm_training_reduces_loss(name: str) -> None:
    torch.manual_seed(0)
    method = create_fusion(name, 16, 16, width=16, heads=2)
    cfg = FusionTrainConfig(steps=60, batch_size=16, lr=3e-3, warmup=5)
    losses = train_fusion(method, _train_data(), cfg)
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.05
    assert not method.training


def test_albef_text_layer_at_end_equals_full_layer() -> None:
    from mafs_bench.models.fusion.blocks import end_token

    torch.manual_seed(0)
    albef = create_fusion("albef", 16, 16, width=16, heads=2).eval()
    _, txt = _features()
    with torch.no_grad():
        full = end_token(albef.text_layer(txt.tokens, src_key_padding_mask=~txt.mask), txt.mask)
        fast = albef.text_layer_at_end(txt)
    assert torch.allclose(full, fast, atol=1e-5)


@pytest.mark.parametrize("name", ["mafs", "albef"])
def test_fusion_training_is_bit_reproducible(name: str) -> None:
    """Two trainings from the same seed give the same bits (several threads, as in a real run)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))
    try:
        states = []
        for _ in range(2):
            torch.manual_seed(0)
            method = create_fusion(name, 64, 64, width=64, heads=4)
            train_fusion(method, _train_data(dim=64, n=128), FusionTrainConfig(steps=15, batch_size=64, warmup=2))
            states.append(method.state_dict())
    finally:
        torch.set_num_threads(threads)
    assert torch.are_deterministic_algorithms_enabled() is False  # the setting is restored afterwards
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_encoding_nothing_gives_empty_features_of_the_right_widths() -> None:
    enc = DualEncoder(load_encoder_config("mafs-tiny-vit"), WordTokenizer(["a", "red", "circle"], context_length=8))
    img = enc.encode_images(np.zeros((0, 32, 32, 3), np.uint8))
    full = enc.encode_images(np.zeros((1, 32, 32, 3), np.uint8))
    assert img.emb.shape == (0, full.emb.shape[1]) and img.tokens.shape == (0, *full.tokens.shape[1:])
    txt = enc.encode_texts([])
    one = enc.encode_texts(["a red circle"])
    assert txt.emb.shape == (0, one.emb.shape[1]) and txt.tokens.shape[0] == 0 and txt.tokens.shape[2] == one.tokens.shape[2]
    assert txt.mask.shape[0] == 0


def test_every_fusion_network_has_the_same_parameter_budget_within_one_percent() -> None:
    counts = {n: sum(p.numel() for p in create_fusion(n, 128, 128).parameters()) for n in FUSED}
    base = counts["fixed_sum"]
    assert all(abs(c / base - 1) < 0.01 for c in counts.values()), counts


def _tiny_encoder(words: list[str], context_length: int = 8) -> DualEncoder:
    cfg = load_encoder_config("mafs-micro-vit")
    cfg["vision_cfg"].update(layers=1, width=32, head_width=16, image_size=16)
    cfg["text_cfg"].update(layers=1, width=32, heads=2)
    cfg["embed_dim"] = 16
    torch.manual_seed(0)
    return DualEncoder(cfg, WordTokenizer(words, context_length=context_length), precision="fp32")


def test_token_alignment_loss_is_filips_word_to_patch_score() -> None:
    """Identity projections, image tokens = unit vectors: caption c's words equal image c's
    tokens, so the similarity matrix is the identity and the loss is log(1 + e^-s) per row;
    pad, start, end and unknown tokens (here aimed at the other image) count for nothing."""
    from mafs_bench.models.training import TokenAlignment

    align = TokenAlignment(4, 4, 4, torch.Generator().manual_seed(0))
    with torch.no_grad():
        for layer in (align.image, align.text):
            layer.weight.copy_(torch.eye(4))
            layer.bias.zero_()
        align.log_scale.fill_(np.log(10.0))
    e = torch.eye(4)
    image_tokens = torch.stack([e[[0, 1]], e[[2, 3]]])  # image 0: e0, e1; image 1: e2, e3
    text_tokens = torch.stack([torch.stack([e[2], e[0], e[1], e[2], e[3]]),   # <start> w w <end> <unk>
                               torch.stack([e[0], e[2], e[3], e[0], e[1]])])
    ids = torch.tensor([[SOT, 4, 5, EOT, UNK], [SOT, 6, 7, EOT, PAD]])
    loss = align(image_tokens, text_tokens, ids)
    assert loss.item() == pytest.approx(float(np.log1p(np.exp(-10.0))), rel=1e-3)  # float32 softmax
    swapped = align(image_tokens.flip(0), text_tokens, ids)  # every caption now matches the other image
    assert swapped.item() == pytest.approx(float(10.0 + np.log1p(np.exp(-10.0))), rel=1e-5)


def test_encoder_training_with_token_alignment_is_reproducible_and_differs_from_itc() -> None:
    from mafs_bench.models.training import EncoderTrainConfig, train_encoder

    words = ["a", "red", "blue", "circle", "square"]
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(12, 16, 16, 3), dtype=np.uint8)
    captions = [[f"a {c} {s}"] for c, s in zip(rng.choice(["red", "blue"], 12), rng.choice(["circle", "square"], 12))]
    cfg = EncoderTrainConfig(steps=3, batch_size=6, warmup=1, precision="fp32", token_alignment=1.0)

    def trained(config: EncoderTrainConfig) -> tuple[list[float], dict[str, torch.Tensor]]:
        enc = _tiny_encoder(words)
        return train_encoder(enc, images, captions, config), enc.state_dict()

    losses, state = trained(cfg)
    again, state_again = trained(cfg)
    itc, state_itc = trained(EncoderTrainConfig(steps=3, batch_size=6, warmup=1, precision="fp32"))
    assert losses == again and all(torch.equal(state[k], state_again[k]) for k in state)
    assert losses[0] > itc[0]  # the alignment term adds to the ITC loss
    assert set(state) == set(state_itc)  # its projections are not part of the encoder
    assert cfg.as_dict()["token_alignment"] == 1.0


@pytest.mark.parametrize("value", [-1.0, float("inf"), "1"])
def test_bad_token_alignment_weight_is_named(value: object) -> None:
    from mafs_bench.models.training import EncoderTrainConfig

    with pytest.raises(ValueError, match=r"encoder_train.token_alignment must be a number >= 0"):
        EncoderTrainConfig(token_alignment=value)
