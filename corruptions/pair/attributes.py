"""Attribute word lists for ``attribute_swap``: colours, numbers, sizes, positions, shapes, objects.

Each kind is a tuple of *entries*; an entry is a tuple of forms that mean the same attribute
value: ``("circle", "circles")`` (singular, plural), ``("gray", "grey")`` (spellings),
``("middle", "center", "centre")`` (synonyms). A swap replaces a word by an entry of the same
kind other than its own, in the same form when that entry has it (plural stays plural), else
in its first form. Objects are the single-word heads of the 80 COCO categories (plus ``man``,
``woman``, ``child``...: COCO captions' most frequent subjects); multi-word categories use
their head noun (``"fire hydrant"`` -> ``hydrant``). The synthetic world's words (8 colours,
6 shapes, small / large, top / bottom / left / right / middle / center / upper / lower,
one / two / three) are all covered.

A word that is in several kinds (``orange``: colour and fruit) belongs to the first kind
listed in :data:`ATTRIBUTES`, so ``orange`` is swapped for another colour.
"""

from __future__ import annotations

Entry = tuple[str, ...]

COLOURS: tuple[Entry, ...] = (
    ("red",), ("green",), ("blue",), ("yellow",), ("purple", "violet"), ("orange",), ("white",),
    ("black",), ("brown",), ("pink",), ("gray", "grey"),
)

NUMBERS: tuple[Entry, ...] = (
    ("one",), ("two",), ("three",), ("four",), ("five",), ("six",), ("seven",), ("eight",), ("nine",), ("ten",),
)

SIZES: tuple[Entry, ...] = (
    ("small", "little", "tiny"), ("large", "big", "huge"),
)

POSITIONS: tuple[Entry, ...] = (
    ("top", "upper"), ("bottom", "lower"), ("left",), ("right",), ("middle", "center", "centre"),
)

SHAPES: tuple[Entry, ...] = (
    ("circle", "circles"), ("square", "squares"), ("triangle", "triangles"), ("star", "stars"),
    ("cross", "crosses"), ("diamond", "diamonds"), ("rectangle", "rectangles"), ("hexagon", "hexagons"),
    ("pentagon", "pentagons"), ("heart", "hearts"), ("oval", "ovals", "ellipse", "ellipses"),
)

OBJECTS: tuple[Entry, ...] = (
    ("person", "people"), ("man", "men"), ("woman", "women"), ("child", "children"), ("boy", "boys"),
    ("girl", "girls"), ("bicycle", "bicycles", "bike", "bikes"), ("car", "cars"),
    ("motorcycle", "motorcycles"), ("airplane", "airplanes", "plane", "planes"), ("bus", "buses"),
    ("train", "trains"), ("truck", "trucks"), ("boat", "boats"), ("light", "lights"),
    ("hydrant", "hydrants"), ("sign", "signs"), ("meter", "meters"), ("bench", "benches"),
    ("bird", "birds"), ("cat", "cats"), ("dog", "dogs"), ("horse", "horses"), ("sheep", "sheep"),
    ("cow", "cows"), ("elephant", "elephants"), ("bear", "bears"), ("zebra", "zebras"),
    ("giraffe", "giraffes"), ("backpack", "backpacks"), ("umbrella", "umbrellas"),
    ("handbag", "handbags"), ("tie", "ties"), ("suitcase", "suitcases"), ("frisbee", "frisbees"),
    ("ski", "skis"), ("snowboard", "snowboards"), ("ball", "balls"), ("kite", "kites"),
    ("bat", "bats"), ("glove", "gloves"), ("skateboard", "skateboards"), ("surfboard", "surfboards"),
    ("racket", "rackets"), ("bottle", "bottles"), ("glass", "glasses"), ("cup", "cups"),
    ("fork", "forks"), ("knife", "knives"), ("spoon", "spoons"), ("bowl", "bowls"),
    ("banana", "bananas"), ("apple", "apples"), ("sandwich", "sandwiches"), ("broccoli", "broccoli"),
    ("carrot", "carrots"), ("hotdog", "hotdogs"), ("pizza", "pizzas"), ("donut", "donuts"),
    ("cake", "cakes"), ("chair", "chairs"), ("couch", "couches", "sofa", "sofas"), ("plant", "plants"),
    ("bed", "beds"), ("table", "tables"), ("toilet", "toilets"), ("tv", "tvs", "television", "televisions"),
    ("laptop", "laptops"), ("mouse", "mice"), ("remote", "remotes"), ("keyboard", "keyboards"),
    ("phone", "phones"), ("microwave", "microwaves"), ("oven", "ovens"), ("toaster", "toasters"),
    ("sink", "sinks"), ("refrigerator", "refrigerators", "fridge", "fridges"), ("book", "books"),
    ("clock", "clocks"), ("vase", "vases"), ("scissors", "scissors"), ("drier", "driers", "dryer", "dryers"),
    ("toothbrush", "toothbrushes"),
)

# Kind name -> entries, in priority order for words listed under several kinds.
ATTRIBUTES: dict[str, tuple[Entry, ...]] = {
    "colour": COLOURS,
    "number": NUMBERS,
    "size": SIZES,
    "position": POSITIONS,
    "shape": SHAPES,
    "object": OBJECTS,
}
# Kinds whose entries are (singular, plural, [other singular, other plural]): a swap keeps the
# grammatical number. In the other kinds every form is a variant and a swap uses the first form.
INFLECTED: frozenset[str] = frozenset({"shape", "object"})


def build_lookup(attributes: dict[str, tuple[Entry, ...]] = ATTRIBUTES) -> dict[str, tuple[str, int, int]]:
    """Lower-case word -> (kind, entry index, form index); the first kind listing a word wins."""
    lookup: dict[str, tuple[str, int, int]] = {}
    for kind, entries in attributes.items():
        for e, entry in enumerate(entries):
            for f, form in enumerate(entry):
                lookup.setdefault(form, (kind, e, f))
    return lookup


LOOKUP: dict[str, tuple[str, int, int]] = build_lookup()


def kind_of(word: str) -> str | None:
    """The attribute kind of ``word`` (case-insensitive), or None."""
    hit = LOOKUP.get(word.lower())
    return hit[0] if hit else None


def replacement_options(word: str) -> tuple[str, ...]:
    """Lower-case words that can replace ``word``: every other entry of its kind, in a matching form.

    Empty for a word that is not an attribute word. ``"circles"`` -> ``("squares", "triangles", ...)``.
    """
    hit = LOOKUP.get(word.lower())
    if hit is None:
        return ()
    kind, e, f = hit
    form = f % 2 if kind in INFLECTED else 0
    return tuple(entry[form] for j, entry in enumerate(ATTRIBUTES[kind]) if j != e)
