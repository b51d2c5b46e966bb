"""Text corruptions: contract, determinism, severity -> changed-word share, odd inputs, WordNet data."""

from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import corruptions  # noqa: E402
import corruptions.presets  # noqa: E402,F401  (registers qmf_text_mask)
from corruptions.text import wordnet  # noqa: E402
from corruptions.text.char import RANDOM_CHARS, clean_map, is_edit_char, keyboard_map, ocr_map  # noqa: E402
from corruptions.text.common import Tokens, changed_word_share, graphemes, split_core  # noqa: E402
from corruptions.text.word import MASK_TOKEN, PUNCTUATION  # noqa: E402

# How each registered text corruption is checked. "share": the MMRobustness rule, about 0.05 * s
# of the words changed; "missing": the same rule over whole captions (a caption is dropped w.p.
# 0.05 * s, so one caption's share is 0 or 1); "qmf": the QMF protocol (half of the captions,
# each word w.p. 0.1 * eps = 0.2 * s).
TEXT_PARAMS: dict[str, str] = {
    "keyboard": "share", "ocr": "share", "char_insert": "share", "char_substitute": "share",
    "char_swap": "share", "char_delete": "share",
    "synonym_replace": "share", "word_insert": "share", "word_swap": "share", "word_delete": "share",
    "insert_punctuation": "share", "word_mask": "share",
    "missing_text": "missing",
    "qmf_text_mask": "qmf",
}
SHARE_NAMES = [n for n, kind in TEXT_PARAMS.items() if kind == "share"]
CHAR_NAMES = ["keyboard", "ocr", "char_insert", "char_substitute", "char_swap", "char_delete"]
SAME_LENGTH = CHAR_NAMES + ["synonym_replace", "word_mask", "word_swap"]  # never change the word count
# Character-level corruptions as the registry knows them (family "character").
CHAR_LEVEL = [n for n in corruptions.names("text") if corruptions.get(n).family == "character"]

# Not used by benchmarks/text_word_share.py.
CAPTIONS = [
    "A woman is slicing a birthday cake with a silver knife.",
    "Several sheep graze on a hillside under a cloudy sky.",
    "A red double decker bus parked beside the old train station.",
    "Two surfers carry their boards across the sandy beach at sunset.",
    "A little boy eating a slice of pizza at a kitchen table.",
    "A bathroom with a white sink, a mirror and a green towel.",
    "a small blue circle at the top right and a large red cross at the bottom",
    "three orange stars in the middle of the picture",
    "An elephant walking through tall grass near a river.",
    "A motorcycle leaning against a brick wall on a quiet street.",
]
SEEDS = range(12)
VOCAB = sorted({w for c in CAPTIONS for w in c.split()})


def long_caption(n_words: int, seed: int = 0) -> str:
    """Words drawn at random from VOCAB (not repeated captions: difflib misaligns periodic text)."""
    order = np.random.default_rng(seed).integers(len(VOCAB), size=n_words)
    return " ".join(VOCAB[int(i)] for i in order)


def mean_share(name: str, severity: int, captions=CAPTIONS, seeds=SEEDS) -> float:
    values = [
        changed_word_share(c, corruptions.apply(name, c, severity, seed=seed, sample_id=k))
        for seed in seeds for k, c in enumerate(captions)
    ]
    return float(np.mean(values))


def test_every_text_corruption_has_test_parameters():
    registered = set(corruptions.names("text"))
    missing = registered - set(TEXT_PARAMS)
    assert not missing, f"text corruptions without test parameters in {__file__}: {sorted(missing)}"
    assert set(TEXT_PARAMS) <= registered, f"stale test parameters: {sorted(set(TEXT_PARAMS) - registered)}"


def test_families_and_tables():
    for name in TEXT_PARAMS:
        spec = corruptions.get(name)
        assert spec.modality == "text"
        if name in CHAR_NAMES:
            assert spec.family == "character"
        elif TEXT_PARAMS[name] == "share":
            assert spec.family == "word"
            assert spec.severities == (0.05, 0.10, 0.15, 0.20, 0.25)
    assert corruptions.get("missing_text").family == "missing"
    assert corruptions.get("qmf_text_mask").severities == (2, 4, 6, 8, 10)


@pytest.mark.parametrize("name", sorted(TEXT_PARAMS))
def test_contract_str_in_str_out(name):
    for severity in corruptions.SEVERITIES:
        for k, caption in enumerate(CAPTIONS[:4]):
            out = corruptions.apply(name, caption, severity, seed=3, sample_id=k)
            assert isinstance(out, str)
    with pytest.raises(TypeError):
        corruptions.apply(name, ["not", "a", "str"], 1)


@pytest.mark.parametrize("name", sorted(TEXT_PARAMS))
def test_deterministic(name):
    text = long_caption(300)
    for severity in (1, 5):
        a = corruptions.apply(name, text, severity, seed=7, sample_id=11)
        b = corruptions.apply(name, text, severity, seed=7, sample_id=11)
        assert a == b
    if TEXT_PARAMS[name] == "missing":
        return
    outs = {corruptions.apply(name, text, 5, seed=seed, sample_id=11) for seed in range(6)}
    assert len(outs) > 1 + (TEXT_PARAMS[name] == "share") * 4, "different seeds should give different outputs"
    assert corruptions.apply(name, text, 3, seed=0, sample_id=1) != corruptions.apply(name, text, 3, seed=0, sample_id=2) \
        or TEXT_PARAMS[name] == "qmf"


@pytest.mark.parametrize("name", SHARE_NAMES)
def test_share_follows_severity(name):
    shares = [mean_share(name, s) for s in corruptions.SEVERITIES]
    assert all(b >= a for a, b in zip(shares, shares[1:])), f"{name}: share not monotone {shares}"
    assert 0.15 <= shares[-1] <= 0.45, f"{name}: share at severity 5 = {shares[-1]:.3f}"
    for s, share in zip(corruptions.SEVERITIES, shares):
        assert abs(share - 0.05 * s) < 0.03, f"{name}: share {share:.3f} at severity {s}"


@pytest.mark.parametrize("name", SHARE_NAMES)
def test_no_cap_on_long_captions(name):
    text = long_caption(2000)
    for severity in (1, 5):
        share = changed_word_share(text, corruptions.apply(name, text, severity, seed=0, sample_id=0))
        assert abs(share - 0.05 * severity) < 0.02, f"{name}: share {share:.3f} on 2000 words at severity {severity}"


# 200 different 10-word captions (share 0.05 at severity 1 = one word in every other caption).
DISTINCT_CAPTIONS = [long_caption(10, seed=1000 + i) for i in range(200)]


@pytest.mark.parametrize("severity", [1, 5])
@pytest.mark.parametrize("name", SHARE_NAMES)
def test_share_holds_without_sample_id(name, severity):
    """Without sample_id each caption draws from its own content id: the share holds over a list
    of different captions (with a fixed default id every caption took the same draws, and at
    severity 1 keyboard and synonym_replace changed none of them)."""
    outs = [(c, corruptions.apply(name, c, severity, seed=seed)) for seed in range(3) for c in DISTINCT_CAPTIONS]
    share = float(np.mean([changed_word_share(c, o) for c, o in outs]))
    assert abs(share - 0.05 * severity) < 0.012 + 0.008 * (severity == 5), (name, severity, share)
    if severity == 1 and name != "word_swap":  # word_swap moves 2 words per swap: a swap in every 4th caption
        changed = float(np.mean([c != o for c, o in outs]))
        assert 0.38 < changed < 0.62, (name, changed)


def test_missing_text_drops_a_severity_scaled_share_of_captions():
    caption = CAPTIONS[0]
    outs = {s: [corruptions.apply("missing_text", caption, s, seed=5, sample_id=i) for i in range(4000)]
            for s in corruptions.SEVERITIES}
    for s, out in outs.items():
        assert set(out) == {"", caption}, "a caption is either dropped whole or left as it is"
        share = float(np.mean([changed_word_share(caption, o) for o in out]))
        assert abs(share - 0.05 * s) < 0.015, f"share {share:.3f} at severity {s}"
    # Shared draws: dropped at severity s means dropped at every higher severity.
    for s in (1, 2, 3, 4):
        assert all(b == "" for a, b in zip(outs[s], outs[s + 1]) if a == "")
    assert 0.15 <= mean_share("missing_text", 5) <= 0.45


def test_qmf_text_mask_protocol():
    shares = [mean_share("qmf_text_mask", s, seeds=range(30)) for s in corruptions.SEVERITIES]
    assert all(b >= a for a, b in zip(shares, shares[1:])), shares
    for s, share in zip(corruptions.SEVERITIES, shares):
        assert abs(share - 0.1 * s) < 0.06, (s, share)  # 0.5 of the texts x 0.1 * eps, eps = 2s
    text = long_caption(200)
    outs = [corruptions.apply("qmf_text_mask", text, 5, sample_id=i) for i in range(200)]
    touched = [o for o in outs if o != text]
    assert 0.4 < len(touched) / len(outs) < 0.6
    assert all(o == " ".join(["_"] * 200) for o in touched)  # eps = 10: every word
    out = corruptions.apply("qmf_text_mask", text, 2, sample_id=next(i for i, o in enumerate(outs) if o != text))
    assert all(w in ("_", v) for w, v in zip(out.split(), text.split()))


@pytest.mark.parametrize("name", sorted(TEXT_PARAMS))
@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_and_blank(name, text):
    """An empty or whitespace-only caption comes back unchanged (missing_text may drop it to "")."""
    for severity in corruptions.SEVERITIES:
        out = corruptions.apply(name, text, severity, seed=1)
        assert out in (("", text) if name == "missing_text" else (text,))


# Corruptions that only edit or replace a word's core (letters, digits): nothing to do without one.
CORE_EDITS = CHAR_NAMES + ["synonym_replace", "word_mask", "word_swap"]


@pytest.mark.parametrize("name", sorted(TEXT_PARAMS))
def test_one_word_and_punctuation_only_captions(name):
    """Defined behaviour on degenerate captions, for every text corruption:

    * one word: stays one word, except for the corruptions that insert words (word_insert,
      insert_punctuation) and missing_text (may drop the caption);
    * punctuation only (no word core): the core edits leave it unchanged; word_delete keeps at
      least one token; insertions add tokens; missing_text / qmf_text_mask act on tokens as usual.
    """
    grows = {"word_insert", "insert_punctuation"}
    for text in ("surfboard", "Dog.", "a", "x"):
        for severity in corruptions.SEVERITIES:
            for seed in range(8):
                out = corruptions.apply(name, text, severity, seed=seed)
                assert isinstance(out, str)
                if name == "missing_text":
                    assert out in ("", text)
                elif name not in grows:
                    assert len(out.split()) == 1, (name, text, out)
    for text in ("!!! ... ???", "-", "( ) , ."):
        for severity in corruptions.SEVERITIES:
            for seed in range(8):
                out = corruptions.apply(name, text, severity, seed=seed)
                assert isinstance(out, str) and out == corruptions.apply(name, text, severity, seed=seed)
                if name in CORE_EDITS:
                    assert out == text, (name, text, out)
                elif name == "word_delete":
                    assert 1 <= len(out.split()) <= len(text.split())


@pytest.mark.parametrize("name", sorted(TEXT_PARAMS))
def test_unicode_and_odd_inputs(name):
    odd = [
        "un café très chaud 🚀",
        "e\u0301te\u0301 cafe\u0301 nai\u0308ve straße 👩\u200d🔬 works",
        "日本語 の キャプション です",
        "!!! ... ???",
        "a",
        "Hello,   world!\nA second   line.",
    ]
    for severity in corruptions.SEVERITIES:
        for seed in range(4):
            for k, text in enumerate(odd):
                out = corruptions.apply(name, text, severity, seed=seed, sample_id=k)
                assert isinstance(out, str)
                out.encode("utf-8")  # no lone surrogates
                for w in out.split():
                    assert not unicodedata.combining(w[0]), f"{name}: combining mark detached in {out!r}"


@pytest.mark.parametrize("name", SAME_LENGTH)
def test_whitespace_and_punctuation_kept(name):
    text = "The  dog, (a beagle)\nsits on the sofa!  Really."
    for seed in range(20):
        out = corruptions.apply(name, text, 5, seed=seed)
        assert re.findall(r"\s+", out) == re.findall(r"\s+", text)
        for old, new in zip(text.split(), out.split()):
            pre, _, post = split_core(old)
            if name != "word_swap" or old != new:
                assert new.startswith(pre) and new.endswith(post), (old, new)


def test_character_level_corruptions_are_known():
    """A new character-level corruption fails here until it is added to CHAR_NAMES (and so is
    checked by every test below that takes CHAR_NAMES, e.g. test_char_edits_change_every_chosen_word)."""
    assert CHAR_LEVEL == CHAR_NAMES, f"registered character-level corruptions changed: {CHAR_LEVEL}"


# Captions for the whitespace rule: many "u"s (nlpaug's keyboard map had " t" for u), upper
# case (its upper-case expansion had " T"), digits and symbols (OCR, keyboard), tabs, newlines,
# runs of spaces and leading / trailing whitespace.
WHITESPACE_CAPTIONS = CAPTIONS + [
    "umbrella under a blue bus full of fruit",
    "A BUS FULL OF UNUSUAL UMBRELLAS UNDER THE SUN",
    "Two hungry pups run out under the usual summer sun.",
    "route 66 bus #12 at 8:05, 100% full",
    "  a\tcup  of\nsoup \u00e9t\u00e9 caf\u00e9 ",
]


@pytest.mark.parametrize("severity", corruptions.SEVERITIES)
@pytest.mark.parametrize("name", CHAR_LEVEL)
def test_char_level_never_adds_or_removes_whitespace(name, severity):
    """No character-level corruption splits, merges or empties a word (REFERENCES.md s5: they edit
    characters inside words). The whitespace runs of the caption come back byte for byte, so the
    word count is unchanged and no word (or single-space-separated token) is empty."""
    for seed in range(30):
        for k, text in enumerate(WHITESPACE_CAPTIONS):
            out = corruptions.apply(name, text, severity, seed=seed, sample_id=k)
            assert re.findall(r"\s+", out) == re.findall(r"\s+", text), (name, severity, seed, text, out)
            assert len(out.split()) == len(text.split()), (name, severity, seed, text, out)
            assert all(Tokens(out).words), (name, out)
            if "  " not in text and text == text.strip():
                assert all(out.split(" ")), (name, out)


def test_keyboard_regression_u_does_not_split_words():
    """nlpaug's keyboard map offers " t" for u: this draw gave 'umbrella jbder a Hl te bus ...' (9 words)."""
    text = "umbrella under a blue bus full of fruit"
    out = corruptions.apply("keyboard", text, 5, seed=6, sample_id=0)
    assert out == "umbrella jbder a Hl*e bus full of fruit"
    assert len(out.split()) == 8
    assert all(len(corruptions.apply("keyboard", text, 5, seed=s, sample_id=0).split()) == 8 for s in range(150))


def test_character_tables_hold_single_printable_characters():
    """Every lookup table and alphabet a character edit reads: one printable non-space character per entry."""
    kb, om = keyboard_map(), ocr_map()
    assert " t" not in kb["u"] and " T" not in kb["U"] and {"i", "j", "h", "k", "7", "8"} <= set(kb["u"])
    for table in (kb, om):
        for key, options in table.items():
            assert is_edit_char(key), repr(key)
            assert options and all(is_edit_char(v) and v != key for v in options), (key, options)
    assert all(is_edit_char(c) for c in RANDOM_CHARS) and len(set(RANDOM_CHARS)) == len(RANDOM_CHARS)
    odd = {"u": [" t", "", "ab", "SS", "\t", "\u00a0", "\u0301", "\u200b", "\x00", "u", "i"], " ": ["x"], "": ["y"], "\n": ["z"]}
    assert clean_map(odd) == {"u": ("i",)}
    assert not is_edit_char("\u3000") and is_edit_char("\u00e9") and is_edit_char("\u65e5") and is_edit_char("#")


def _changed_words(name: str, text: str, severity: int = 5, seeds=range(20)):
    for seed in seeds:
        out = corruptions.apply(name, text, severity, seed=seed)
        old_words, new_words = text.split(), out.split()
        assert len(old_words) == len(new_words)
        yield from ((o, n) for o, n in zip(old_words, new_words) if o != n)


def test_keyboard_and_ocr_use_nlpaug_maps():
    kb, om = keyboard_map(), ocr_map()
    assert set(kb["e"]) >= {"w", "r", "d", "s"} and "e" not in kb["e"]
    assert "0" in om["o"] and "o" in om["0"]  # the reverse mapping is added, as nlpaug does
    for name, mapping in (("keyboard", kb), ("ocr", om)):
        for old, new in _changed_words(name, CAPTIONS[0]):
            diffs = [(a, b) for a, b in zip(old, new) if a != b]
            assert diffs and all(b in mapping[a] for a, b in diffs), (name, old, new)


def test_char_edits_change_every_chosen_word():
    text = " ".join(["bookkeeper llama aaaa committee balloon"] * 8)  # 40 words: 10 at severity 5
    for name in CHAR_NAMES:
        for seed in range(10):
            out = corruptions.apply(name, text, 5, seed=seed)
            assert len(out.split()) == 40
            assert sum(o != n for o, n in zip(text.split(), out.split())) == 10, (name, out)
    # a word of one repeated letter cannot be swapped: another word is chosen instead
    for seed in range(10):
        assert corruptions.apply("char_swap", "aaaa bbbb ab", 5, seed=seed).split()[:2] == ["aaaa", "bbbb"]


def test_synonym_replace_uses_wordnet_synonyms_of_content_words():
    table = wordnet.load_table()
    for text in CAPTIONS[:5]:
        for old, new in _changed_words("synonym_replace", text):
            core_old, core_new = split_core(old)[1], split_core(new)[1]
            assert wordnet.is_content_word(core_old)
            assert core_new.lower() in table.synonyms(core_old)
            assert core_new[:1].isupper() == core_old[:1].isupper()


def test_word_level_structure():
    text = CAPTIONS[3]
    words = text.split()
    for seed in range(20):
        deleted = corruptions.apply("word_delete", text, 5, seed=seed).split()
        assert _is_subsequence(deleted, words) and deleted
        inserted = corruptions.apply("word_insert", text, 5, seed=seed).split()
        assert _is_subsequence(words, inserted)
        punct = corruptions.apply("insert_punctuation", text, 5, seed=seed).split()
        assert _is_subsequence(words, punct) and all(w in PUNCTUATION for w in _extra(words, punct))
        swapped = corruptions.apply("word_swap", text, 5, seed=seed)
        assert sorted(split_core(w)[1].lower() for w in swapped.split()) == sorted(split_core(w)[1].lower() for w in words)
        masked = corruptions.apply("word_mask", text, 5, seed=seed).split()
        assert all(MASK_TOKEN in n for o, n in zip(words, masked) if o != n)
    for seed in range(20):  # sentence case stays with the first position
        swapped = corruptions.apply("word_swap", "A dog bites a man", 5, seed=seed)
        assert swapped[0].isupper() and not any(w[0].isupper() for w in swapped.split()[1:]), swapped
    assert corruptions.apply("word_delete", "single", 5, seed=0) == "single"
    # captions without synonyms still get inserted words
    assert len(corruptions.apply("word_insert", " ".join(["xqzt"] * 40), 5, seed=0).split()) == 50


def _is_subsequence(short, long):
    it = iter(long)
    return all(any(w == x for x in it) for w in short)


def _extra(short, long):
    out, i = [], 0
    for w in long:
        if i < len(short) and w == short[i]:
            i += 1
        else:
            out.append(w)
    return out


def test_no_global_rng_touched():
    random.seed(123)
    np.random.seed(123)
    py_state, np_state = random.getstate(), np.random.get_state()
    for name in TEXT_PARAMS:
        corruptions.apply(name, CAPTIONS[0], 5, seed=1)
    assert random.getstate() == py_state
    now = np.random.get_state()
    assert np.array_equal(now[1], np_state[1]) and now[2:] == np_state[2:]


def test_never_imports_torch_or_nlpaug_code():
    code = (
        "import corruptions, corruptions.presets, sys\n"
        "for n in corruptions.names('text'): corruptions.apply(n, 'a quick brown fox jumps', 5)\n"
        "print('torch' in sys.modules, 'nlpaug' in sys.modules)\n"
    )
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"}
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_tokens_round_trip():
    for text in ["", "  ", "a", " a b  c\n", "x\ty", "héllo 🚀  wörld "]:
        assert str(Tokens(text)) == text
    t = Tokens("a b c")
    t.delete(2)
    t.insert(0, "z")
    t.insert(3, "end")
    assert str(t) == "z a b end"
    assert graphemes("e\u0301a") == ["e\u0301", "a"]
    assert changed_word_share("a b c d", "a c b d") == 0.25
    assert changed_word_share("a b c d", "a b x c d") == 0.25
    assert changed_word_share("", "x") == 0.0


# --- WordNet data ---------------------------------------------------------------------------------------

@pytest.fixture
def fresh_table():
    wordnet.load_table.cache_clear()
    yield
    wordnet.load_table.cache_clear()


@pytest.mark.parametrize("name", ["synonym_replace", "word_insert"])
def test_missing_wordnet_raises_clear_error(name, fresh_table, monkeypatch, tmp_path):
    monkeypatch.setattr(wordnet, "TABLE_PATH", tmp_path / "absent.json.gz")
    monkeypatch.setattr(wordnet, "DICT_DIRS", (tmp_path / "no-wordnet",))
    monkeypatch.delenv(wordnet.ENV_VAR, raising=False)
    for text in (CAPTIONS[0], ""):
        with pytest.raises(wordnet.WordNetMissingError) as err:
            corruptions.apply(name, text, 3)
        message = str(err.value)
        assert "WordNet" in message and "absent.json.gz" in message and "apt-get install wordnet-base" in message
        assert "synonym_replace" in message


def test_wordnet_env_override(fresh_table, monkeypatch, tmp_path):
    monkeypatch.setenv(wordnet.ENV_VAR, str(wordnet.TABLE_PATH))
    assert wordnet.load_table().source == str(wordnet.TABLE_PATH)
    wordnet.load_table.cache_clear()
    monkeypatch.setenv(wordnet.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(wordnet.WordNetMissingError, match="nowhere"):
        corruptions.apply("synonym_replace", CAPTIONS[0], 1)


def test_shipped_table_and_licence():
    assert wordnet.TABLE_PATH.is_file()
    assert wordnet.TABLE_PATH.stat().st_size < 3_000_000
    licence = (wordnet.DATA_DIR / "LICENSE-WordNet-3.0.txt").read_text()
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in licence
    table = wordnet.load_table()
    assert "little" in table.synonyms("small") and "crimson" in table.synonyms("red")
    assert table.synonyms("dogs") == table.synonyms("dog")  # morphy rules
    assert "goose" not in table.synonyms("geese") and table.synonyms("geese")  # exception list
    assert table.synonyms("xqzt") == ()


@pytest.mark.skipif(not (Path("/usr/share/wordnet") / "data.noun").is_file(), reason="Debian wordnet-base not installed")
def test_shipped_table_matches_generator(fresh_table, monkeypatch):
    """Regenerating from WordNet 3.0 (wordnet-base) gives the shipped table."""
    import gzip
    import json

    with gzip.open(wordnet.TABLE_PATH, "rt", encoding="utf-8") as f:
        shipped = json.load(f)
    assert wordnet.build_table(Path("/usr/share/wordnet")) == shipped
