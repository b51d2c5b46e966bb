"""Captioning: the decoder (greedy, beam, teacher forcing), the per-method conditioners and their
budget, the batched scorer against caption_metrics, the task on synthetic data, the prior, and
which cells captioning skips."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mafs_bench.data import ImageTextData
from mafs_bench.metrics.captioning import CaptionScorer, MeteorProcess
from mafs_bench.models.caption_decoder import CaptionDecoder, DecoderShape, ffn_hidden_for_budget
from mafs_bench.models.caption_training import (CaptionTrainConfig, most_frequent_caption, pool_vocabulary,
                                                split_pool)
from mafs_bench.models.encoder import DualEncoder, ImageFeatures, load_encoder_config
from mafs_bench.models.fusion import FUSIONS, FusionMethod, ReferencePool, create_fusion, gather
from mafs_bench.models.fusion.caption_blocks import CrossAttentionConditioner
from mafs_bench.models.tokenizer import EOT, PAD, SOT, UNK, WordTokenizer
from mafs_bench.tasks import create_task
from mafs_bench.tasks.base import EncodedCell
from mafs_bench.tasks.captioning import Captioning

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="needs Java (pycocoevalcap)")

#: methods with a caption decoder: those declaring captioning, but the prior
CAPTIONERS = [n for n in FUSIONS.names() if "captioning" in FUSIONS.get(n).tasks and not FUSIONS.get(n).predicts_prior]
V, L, W, IMG, EMB = 20, 9, 16, 12, 8


def test_captioning_methods_are_the_expected_ones() -> None:
    assert set(CAPTIONERS) == {"clip", "fixed_sum", "mafs", "albef", "blip", "concat_mlp", "gmu"}, \
        "new captioning method: add it to the tests"
    assert FUSIONS.get("prior").predicts_prior and "captioning" in FUSIONS.get("prior").tasks
    for name in FUSIONS.names():  # a method declares captioning exactly when it has a decoder (or is the prior)
        has_decoder = FUSIONS.get(name).caption_conditioner is not FusionMethod.caption_conditioner
        assert ("captioning" in FUSIONS.get(name).tasks) == (has_decoder or FUSIONS.get(name).predicts_prior), name


def _features(n: int, seed: int = 0) -> ImageFeatures:
    g = torch.Generator().manual_seed(seed)
    return ImageFeatures(F.normalize(torch.randn(n, EMB, generator=g), dim=-1), torch.randn(n, 5, IMG, generator=g))


def _decoder(name: str, seed: int = 0) -> CaptionDecoder:
    """A random-init decoder of method ``name`` with references fitted (MA-AFS's banks)."""
    torch.manual_seed(seed)
    cond = create_fusion(name, IMG, IMG, width=W, heads=2).caption_conditioner(IMG, EMB, W, 2, 2)
    g = torch.Generator().manual_seed(seed + 1)
    bank = F.normalize(torch.randn(6, EMB, generator=g), dim=-1)
    feats = _features(10, seed + 2)
    cond.fit_reference(ReferencePool(bank, bank, feats.emb, feats.emb[:0], torch.zeros(0, dtype=torch.long), 10.0))
    dec = CaptionDecoder(V, L, cond, W, 2, 2, 24).eval()
    with torch.no_grad():  # large random weights, so that captions differ between images
        for param in dec.parameters():
            param.normal_(0.0, 0.6, generator=g)
    return dec


@pytest.mark.parametrize("name", CAPTIONERS)
def test_beam_one_is_greedy_and_beam_search_keeps_its_promises(name: str) -> None:
    dec = _decoder(name)
    prep = dec.conditioner.prepare(_features(7))
    greedy = dec.generate(prep, beam=1)
    assert dec._beam(prep, 1, L, 1.0) == greedy
    first = dec._start(prep)[0]
    assert not torch.allclose(first[0], first[1]), "the next-word distribution should depend on the image"
    for captions in (greedy, dec.generate(prep, beam=3), dec.generate(prep, beam=2, max_length=5)):
        assert len(captions) == 7
        for ids in captions:
            assert not set(ids) & {PAD, SOT, EOT, UNK} and all(0 <= t < V for t in ids)
            assert len(ids) <= L - 2
    assert all(len(ids) <= 3 for ids in dec.generate(prep, beam=2, max_length=5))
    assert dec.generate(dec.conditioner.prepare(_features(0)), beam=3) == []
    with pytest.raises(ValueError, match="beam"):
        dec.generate(prep, beam=0)


@pytest.mark.parametrize("name", CAPTIONERS)
def test_stepwise_decoding_equals_teacher_forcing(name: str) -> None:
    """The cached step-by-step path computes the same next-word distributions as the full forward."""
    dec = _decoder(name)
    prep = gather(dec.conditioner.prepare(_features(3)), torch.tensor([2]))
    ids = torch.tensor([[SOT, 5, 9, 7, 11, EOT]])
    with torch.no_grad():
        full = torch.log_softmax(dec(ids, prep), dim=-1)[0]
        logp, caches = dec._start(prep)
        steps = [logp[0]]
        for pos, token in enumerate(ids[0, 1:-1].tolist(), start=1):
            steps.append(dec._next(torch.tensor([token]), pos, prep, caches)[0])
    stepped = torch.stack(steps)
    allowed = torch.isfinite(stepped)
    assert not allowed[:, [PAD, SOT, UNK]].any() and allowed[:, EOT].all()
    assert torch.allclose(stepped[allowed], full[: len(steps)][allowed], atol=1e-5)


def test_beam_search_finds_the_better_caption_greedy_misses() -> None:
    """A toy Markov 'decoder': greedy takes "a" (0.6) and ends with "a c" (log p -1.59, per token
    -0.53); beam 2 also keeps "b" (0.4), which ends at once with p 0.99 (per token -0.46)."""
    dec = _decoder("blip")
    table = torch.full((V, V), float("-inf"))
    table[SOT, 4], table[SOT, 5] = np.log(0.6), np.log(0.4)  # after <start>: a, b
    table[4, 6], table[4, EOT], table[4, 5] = np.log(0.34), np.log(0.33), np.log(0.33)  # after a: c, end, b
    table[5, EOT], table[5, 6] = np.log(0.99), np.log(0.01)  # after b: end
    table[6, EOT] = 0.0  # after c: end
    dec._start = lambda prep: (table[SOT].expand(len(prep["k1"]), V).clone(), [])
    dec._next = lambda tokens, pos, prep, caches: table[tokens].clone()
    prep = dec.conditioner.prepare(_features(2))
    assert dec.generate(prep, beam=1) == [[4, 6], [4, 6]]
    assert dec.generate(prep, beam=2) == [[5], [5]]
    assert dec.generate(prep, beam=2, length_penalty=0.0) == [[5], [5]]  # also by summed log p


def test_every_decoder_gets_the_same_parameter_budget() -> None:
    shape = DecoderShape()
    vocab, length = 50, 34
    reference = CaptionDecoder(vocab, length, CrossAttentionConditioner(128, shape.width, shape.heads, shape.layers),
                               shape.width, shape.heads, shape.layers, shape.ffn_ratio * shape.width)
    budget = sum(p.numel() for p in reference.parameters())
    for name in CAPTIONERS:
        cond = create_fusion(name, 128, 128).caption_conditioner(128, 128, shape.width, shape.heads, shape.layers)
        hidden = ffn_hidden_for_budget(budget, cond, vocab, length + cond.prefix_length, shape.width, shape.layers)
        dec = CaptionDecoder(vocab, length, cond, shape.width, shape.heads, shape.layers, hidden)
        assert abs(sum(p.numel() for p in dec.parameters()) / budget - 1) < 0.01, name
    with pytest.raises(ValueError, match="budget"):
        ffn_hidden_for_budget(100, cond, vocab, length, shape.width, shape.layers)


def test_mafs_captioning_weights_are_per_image_and_fixed_sum_has_none() -> None:
    mafs, fixed = _decoder("mafs"), _decoder("fixed_sum")
    feats = _features(4)
    alpha, cues = mafs.conditioner.weights(mafs.conditioner.prepare(feats))
    assert alpha.shape == (4, 2) and torch.allclose(alpha.sum(-1), torch.ones(4))
    assert cues.shape == (4, 5) and cues[:, [0, 3]].isfinite().all() and cues[:, [1, 2, 4]].isnan().all()
    assert fixed.conditioner.weights(fixed.conditioner.prepare(feats)) is None
    no_image_cue = create_fusion("mafs", IMG, IMG, width=W, heads=2, cues=["h_t", "a_t"])
    with pytest.raises(ValueError, match="image cues"):
        no_image_cue.caption_conditioner(IMG, EMB, W, 2, 2)
    with pytest.raises(NotImplementedError, match="no caption decoder"):
        create_fusion("prior", IMG, IMG).caption_conditioner(IMG, EMB, W, 2, 2)


def test_prior_pool_and_vocabulary_helpers() -> None:
    assert most_frequent_caption([["a b", "c"], ["c", "a b"], ["d"]]) == "a b"  # tie: the first to occur
    assert most_frequent_caption([["x"], ["y", "y"]]) == "y"
    with pytest.raises(ValueError, match="no training captions"):
        most_frequent_caption([[]])
    assert pool_vocabulary([["A dog, runs", "a cat"]]) == ["a", "dog", ",", "runs", "cat"]
    assert split_pool(100, 4000, 1000) == (slice(0, 80), slice(80, 100))
    assert split_pool(10_000, 4000, 1000) == (slice(0, 4000), slice(4000, 5000))
    with pytest.raises(ValueError, match="too few"):
        split_pool(3, 10, 10)


@pytest.mark.parametrize("options, match", [
    ({"beam": 0}, "beam"), ({"images": -1}, "images"), ({"bank": 1}, "bank"), ({"max_length": 1}, "max_length"),
    ({"train": {"seed": 3}}, "seeds"), ({"train": {"augmentations": ["text_feature_noise"]}}, "degrade text"),
    ({"train": {"steps": 0}}, "steps"), ({"decoder": {"width": 30, "heads": 4}}, "divisible"),
    ({"decoder": {"depth": 2}}, "decoder"), ({"train": {"epochs": 2}}, "train"),
])
def test_bad_task_options_name_the_option(options: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        create_task("captioning", **options)


def test_captioning_skips_text_and_pair_cells_and_says_why() -> None:
    from mafs_bench.runner.run import Cell, skipped_modalities

    task = create_task("captioning")
    assert task.skip_reason("none") is None and task.skip_reason("image") is None
    for modality in ("text", "pair"):
        assert "references stay clean" in task.skip_reason(modality)
    cells = [Cell("plain", "none", 0), Cell("plain", "gaussian_noise", 5), Cell("plain", "keyboard", 1),
             Cell("plain", "caption_shuffle", 1)]
    skipped = skipped_modalities({"captioning": task, "retrieval": create_task("retrieval")}, cells)
    assert set(skipped) == {"captioning"} and set(skipped["captioning"]) == {"text", "pair"}


# ------------------------------------------------------------------------- scoring (needs Java)

REFS = {
    3: ["A red bus on a street.", "a bus drives down the road", "the red bus"],
    "b": ["Two cats sleep on a sofa.", "cats asleep on a couch"],
    7: ["a plate of rice and broccoli", "Rice, broccoli and chicken on a plate."],
    "e": ["a kite in the park", "a child flies a kite"],
}
SETS = {
    "good": {3: "a red bus on the street", "b": "two cats on a couch", 7: "rice and broccoli on a plate", "e": "a kite"},
    "poor": {"e": "", "b": "a bus", 7: "...!", 3: "two cats\non a sofa"},
    "same": {3: "a red bus on the street", "b": "a bus", 7: "rice and broccoli on a plate", "e": ""},
}


def test_per_item_rouge_and_cider_equal_pycocoevalcap_on_random_captions() -> None:
    """The scorer's own ROUGE-L (bit-parallel LCS) and CIDEr-D (reference vectors kept) against
    pycocoevalcap's Rouge and Cider, on random token sequences (empty predictions included)."""
    import random

    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    from mafs_bench.metrics.captioning import _CiderItems, _RougeItems

    rng = random.Random(0)
    words = "a b c d e f".split()

    def sentence(low: int) -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(low, 12)))

    refs = {i: [sentence(1) for _ in range(rng.randint(1, 5))] for i in range(40)}
    preds = {i: "" if i % 9 == 0 else sentence(0) for i in refs}
    rouge, cider = _RougeItems(refs), _CiderItems(refs)
    want_rouge = Rouge().compute_score(refs, {i: [p] for i, p in preds.items()})[1]
    want_cider = Cider().compute_score(refs, {i: [p] for i, p in preds.items()})[1]
    assert [rouge.score(i, preds[i]) for i in refs] == pytest.approx(list(want_rouge), abs=1e-12)
    assert [cider.score(i, preds[i]) for i in refs] == pytest.approx(list(want_cider), abs=1e-12)
    assert max(want_cider) > 0 and max(want_rouge) > 0


def _pycocoevalcap(sets: dict) -> dict:
    """Corpus and per-item scores of each set, from pycocoevalcap called as COCOEvalCap does
    (PTB tokenizer, then each scorer), one METEOR process for all sets."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    from mafs_bench.metrics.captioning import _close_meteor

    tokenizer, meteor, out = PTBTokenizer(), Meteor(), {}
    try:
        for key, preds in sets.items():
            gts = tokenizer.tokenize({i: [{"caption": c} for c in REFS[i]] for i in preds})
            res = tokenizer.tokenize({i: [{"caption": preds[i].replace("\n", " ")}] for i in preds})
            corpus, items = {}, {}
            bleu, bleu_items = Bleu(4).compute_score(gts, res, verbose=0)
            for n in range(4):
                corpus[f"Bleu_{n + 1}"], items[f"Bleu_{n + 1}"] = bleu[n], bleu_items[n]
            for name, scorer in (("METEOR", meteor), ("ROUGE_L", Rouge()), ("CIDEr", Cider())):
                corpus[name], items[name] = scorer.compute_score(gts, res)
            out[key] = corpus, items
    finally:
        _close_meteor(meteor)
    return out


@needs_java
@pytest.mark.parametrize("workers", [1, 3])
def test_caption_scorer_equals_pycocoevalcap_for_every_set(workers: int) -> None:
    """(caption_metrics equals pycocoevalcap too: tests/test_metrics.py.) With several METEOR
    processes each computes a share of the statistics; the scores stay pycocoevalcap's."""
    meteor = MeteorProcess(workers=workers)
    with CaptionScorer(REFS, meteor=meteor) as scorer:
        got = scorer.score_many(SETS)
        again = scorer.score(SETS["poor"])  # from the kept per-item parts
        with pytest.raises(ValueError, match="ids differ"):
            scorer.score({3: "a bus"})
        with pytest.raises(TypeError, match="not str"):
            scorer.score({**SETS["good"], 3: 5})
    expected = _pycocoevalcap(SETS)
    for key, preds in SETS.items():
        corpus, per_item = got[key]
        want, want_items = expected[key]
        assert list(corpus) == ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]
        for name in corpus:
            assert corpus[name] == pytest.approx(want[name], abs=1e-9), (key, name)
            np.testing.assert_allclose(per_item[name], want_items[name], rtol=0, atol=1e-9, err_msg=f"{key} {name}")
    meteor.close()
    with pytest.raises(ValueError, match="workers"):
        MeteorProcess(workers=0)
    assert again[0] == got["poor"][0]
    assert got["good"][0]["CIDEr"] > got["same"][0]["CIDEr"] > got["poor"][0]["CIDEr"]


# ------------------------------------------------------------------------- the task, end to end

COLOURS = {"red": (220, 30, 30), "blue": (30, 60, 230), "green": (30, 200, 60)}
CAPTIONS = {"red": "a red square", "blue": "a blue circle in the middle", "green": "two green stars"}


def _synthetic(counts: dict[str, int], seed: int) -> tuple[np.ndarray, list[list[str]]]:
    """Flat colour images with noise; the caption says which colour (and so, what shape)."""
    rng = np.random.default_rng(seed)
    images, captions = [], []
    for colour, n in counts.items():
        for _ in range(n):
            noisy = np.array(COLOURS[colour])[None, None] + rng.normal(0, 12, (16, 16, 3))
            images.append(np.clip(noisy, 0, 255).astype(np.uint8))
            captions.append([CAPTIONS[colour]])
    return np.stack(images), captions


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Caption decoders of every method (and the prior) trained on the synthetic colours, then
    evaluated on unseen images; the second fit comes from the weights cache."""
    cache = tmp_path_factory.mktemp("cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("MAFS_BENCH_CACHE", str(cache))
    train_images, train_captions = _synthetic({"red": 30, "blue": 24, "green": 18}, 0)
    vocab = sorted({w for c in CAPTIONS.values() for w in c.split()})
    dataset = SimpleNamespace(training_data=lambda: (train_images, train_captions, vocab), recipe=lambda: {"synthetic": 1})
    torch.manual_seed(0)
    encoder = DualEncoder(load_encoder_config("mafs-tiny-vit"), WordTokenizer(vocab, 12)).eval()
    bundle = SimpleNamespace(encoder=encoder, info={"encoder_key": "synthetic-test"})
    methods = {(0, m): create_fusion(m, 128, 128) for m in [*CAPTIONERS, "prior"]}
    options = dict(beam=2, images=24, pool=60, bank=10, decoder={"width": 32, "heads": 2, "layers": 2, "ffn_ratio": 4},
                   train={"steps": 40, "batch_size": 16, "lr": 1e-2, "warmup": 5})
    task = Captioning(**options)
    info = task.fit(bundle, dataset, methods, torch.device("cpu"), None)
    images, captions = _synthetic({"red": 4, "blue": 8, "green": 14}, 1)
    flat = [c for caps in captions for c in caps]
    data = ImageTextData("synthetic", "plain", images, flat, np.arange(len(flat)), image_ids=np.arange(100, 100 + len(flat)))
    cell = EncodedCell(encoder.encode_images(images), encoder.encode_texts(flat), data.caption_image, 10.0, data=data)
    results = task.evaluate_methods(cell, methods) if shutil.which("java") else None
    again = Captioning(**options)
    again_info = again.fit(bundle, dataset, methods, torch.device("cpu"), None)
    yield SimpleNamespace(task=task, again=again, info=info, again_info=again_info, results=results, cell=cell,
                          methods=methods)
    task.close()
    mp.undo()


def test_decoders_train_once_then_come_from_the_cache(synthetic_run: SimpleNamespace) -> None:
    info, again = synthetic_run.info, synthetic_run.again_info
    assert sorted(info["trained"]) == sorted(f"{m}/0" for m in CAPTIONERS) and again["trained"] == []
    assert info["keys"] == again["keys"] and len(set(info["keys"].values())) == len(CAPTIONERS)
    assert info["prior_caption"] == "a red square"  # the most frequent training caption
    assert max(info["params"].values()) / min(info["params"].values()) < 1.01
    for key, decoder in synthetic_run.task.fitted.decoders.items():
        cached = synthetic_run.again.fitted.decoders[key]
        assert all(torch.equal(a, b) for a, b in zip(decoder.state_dict().values(), cached.state_dict().values()))


@needs_java
def test_captioning_task_on_synthetic_data(synthetic_run: SimpleNamespace) -> None:
    results = synthetic_run.results
    assert set(results) == set(synthetic_run.methods)
    n = 24  # images option: the first 24 of 26 captioned images
    prior = results[(0, "prior")]
    assert set(prior.extra["captions"].values()) == {"a red square"}
    for key, result in results.items():
        assert list(result.metrics) == ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr"]
        (items,) = result.extra["items"]
        assert items.side == "image" and list(items.positions) == list(range(n)) and set(items.scores) == {"CIDEr", "ROUGE_L"}
        assert result.metrics["CIDEr"] == pytest.approx(items.scores["CIDEr"].mean(), abs=1e-9)
        assert result.metrics["ROUGE_L"] == pytest.approx(items.scores["ROUGE_L"].mean(), abs=1e-9)
        if key[1] != "prior":  # every trained decoder reads the colour: better than the prior
            assert result.metrics["CIDEr"] > 2 * prior.metrics["CIDEr"], key
    best = max(r.metrics["CIDEr"] for r in results.values())
    assert best > 2 * prior.metrics["CIDEr"]
    mafs = results[(0, "mafs")].weights
    assert list(mafs["sample_id"]) == list(range(100, 100 + n))
    assert np.allclose(mafs["alpha_v"] + mafs["alpha_t"], 1.0) and np.isnan(mafs["h_t"]).all()
    assert results[(0, "fixed_sum")].weights is None and results[(0, "clip")].weights is None
    with pytest.raises(TypeError, match="evaluate_methods"):
        synthetic_run.task.evaluate(synthetic_run.cell, synthetic_run.methods[(0, "clip")])


def test_fit_refuses_a_method_without_decoder_and_data_without_training_split() -> None:
    class NoDecoder(FusionMethod):
        has_fusion = False

    task = Captioning()
    bundle = SimpleNamespace(encoder=None, info={})
    with pytest.raises(ValueError, match="no caption decoder"):
        task.fit(bundle, SimpleNamespace(), {(0, "mine"): NoDecoder(8, 8)}, torch.device("cpu"), None)
    with pytest.raises(ValueError, match="training split"):
        task.fit(bundle, SimpleNamespace(training_data=lambda: None), {(0, "prior"): create_fusion("prior", 8, 8)},
                 torch.device("cpu"), None)


def test_training_config_is_validated() -> None:
    assert CaptionTrainConfig().augmentations == ("image_feature_noise", "image_token_dropout")
    with pytest.raises(ValueError, match="augment_prob"):
        CaptionTrainConfig(augment_prob=2.0)


def test_caption_weights_are_keyed_by_the_code_that_trains_them() -> None:
    from mafs_bench.models import cache

    files = {rel for rel, _ in cache.source_files(cache.CAPTION_SOURCES)}
    for needed in ("mafs_bench/models/caption_decoder.py", "mafs_bench/models/caption_training.py",
                   "mafs_bench/models/fusion/caption_blocks.py", "mafs_bench/models/augment.py"):
        assert needed in files, needed
    assert "mafs_bench/models/caption_decoder.py" not in {rel for rel, _ in cache.source_files(cache.CODE_SOURCES)}


def test_each_backend_group_fits_its_own_decoders_and_they_accumulate(tmp_path, monkeypatch) -> None:
    """The runner calls fit once per backend group (each with its own encoder); the decoders of
    every group's rows stay available for evaluation."""
    monkeypatch.setenv("MAFS_BENCH_CACHE", str(tmp_path))
    images, captions = _synthetic({"red": 6, "blue": 6, "green": 6}, 0)
    vocab = sorted({w for c in CAPTIONS.values() for w in c.split()})
    dataset = SimpleNamespace(training_data=lambda: (images, captions, vocab), recipe=lambda: {"synthetic": 2})
    task = Captioning(pool=12, bank=4, decoder={"width": 16, "heads": 2, "ffn_ratio": 4}, train={"steps": 2, "batch_size": 4})
    for seed, (row, method) in enumerate((("clip", "clip"), ("mafs_b", "mafs"))):
        torch.manual_seed(seed)
        encoder = DualEncoder(load_encoder_config("mafs-tiny-vit"), WordTokenizer(vocab, 12)).eval()
        bundle = SimpleNamespace(encoder=encoder, info={"encoder_key": f"group-{seed}"})
        info = task.fit(bundle, dataset, {(0, row): create_fusion(method, 128, 128)}, torch.device("cpu"), None)
        assert info["trained"] == [f"{row}/0"]
    assert set(task.fitted.decoders) == {(0, "clip"), (0, "mafs_b")}
