"""Flip label maps derived from class names.

A horizontally mirrored "left to right" clip shows "right to left", and a clockwise
rotation turns anticlockwise. When flipping is a training augmentation the label has to
follow the image: `derive_flip_label_map` reads the class names and pairs each class whose
name carries a horizontal direction word with the class whose name reads the same after
swapping the words (left <-> right, leftward(s) <-> rightward(s), clockwise <->
anticlockwise / counterclockwise). Vertical words (up, down) and names without direction
words are unchanged by a horizontal flip: those classes map to themselves.
"""

import re

from tfvideo.api._export import tf_export

# Canonical horizontal direction word -> its mirror image.
_MIRROR = {
    "left": "right", "right": "left",
    "leftward": "rightward", "rightward": "leftward",
    "leftwards": "rightwards", "rightwards": "leftwards",
    "clockwise": "anticlockwise", "anticlockwise": "clockwise",
}
# Spellings of the same direction (after tokenizing), -> canonical word.
_SYNONYMS = {"counterclockwise": "anticlockwise", "ccw": "anticlockwise", "cw": "clockwise"}
_JOINED = {("anti", "clockwise"): "anticlockwise", ("counter", "clockwise"): "anticlockwise"}


def _tokens(name):
    """Lower-case words of a class name in any style: snake_case, kebab-case, CamelCase, sentences."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", str(name))  # CamelCase -> Camel Case
    words = [w for w in re.split(r"[^0-9a-z]+", spaced.lower()) if w]
    out = []
    for word in words:
        if out and (out[-1], word) in _JOINED:  # "anti-clockwise", "counter clockwise"
            out[-1] = _JOINED[(out[-1], word)]
        else:
            out.append(_SYNONYMS.get(word, word))
    return tuple(out)


def _mirror(tokens):
    return tuple(_MIRROR.get(t, t) for t in tokens)


@tf_export("tfvideo.data.horizontal_direction_words")
def horizontal_direction_words(name):
    """The horizontal direction words (canonical spelling) in a class name, in order."""
    return [t for t in _tokens(name) if t in _MIRROR]


@tf_export("tfvideo.data.derive_flip_label_map")
def derive_flip_label_map(names):
    """Class id -> class id of its horizontal mirror image, derived from the class names.

    Names are compared word by word, case- and style-insensitively ("left_to_right",
    "Left-To-Right", "LeftToRight" and "left to right" are the same words); "anti-clockwise",
    "anticlockwise", "counterclockwise" and "counter-clockwise" are one word.

    A class whose name has no horizontal direction word maps to itself, as does one whose
    words are mirror-symmetric with no other class reading as its mirror ("shaking left and
    right"). Otherwise its partner is the class whose name reads the same after swapping
    left/right and clockwise/anticlockwise.

    Args:
      names: the class names, class k at index k.
    Returns:
      list of int, a permutation of range(len(names)) that is its own inverse.
    Raises:
      ValueError naming the class (index and name) whose direction word has no partner,
      or two classes that claim the same partner.
    """
    names = list(names)
    index = {}
    for k, name in enumerate(names):
        index.setdefault(_tokens(name), k)
    mapping = []
    for k, name in enumerate(names):
        tokens = _tokens(name)
        words = [t for t in tokens if t in _MIRROR]
        if not words:
            mapping.append(k)
            continue
        mirrored = _mirror(tokens)
        if mirrored in index:
            mapping.append(index[mirrored])
        elif sorted(words) == sorted(_MIRROR[w] for w in words):
            mapping.append(k)  # "left and right": the flip leaves the action as it is.
        else:
            raise ValueError(f"class {k} {name!r} has the horizontal direction word {words[0]!r} but no class reads "
                             f"{' '.join(mirrored)!r} (its mirror image)")
    for k, m in enumerate(mapping):
        if mapping[m] != k:
            j = next(j for j, mj in enumerate(mapping) if mj == m and j != k) if mapping.count(m) > 1 else mapping[m]
            raise ValueError(f"classes {k} {names[k]!r} and {j} {names[j]!r} both read as the mirror image of "
                             f"class {m} {names[m]!r}")
    return mapping


def describe_flip_label_map(mapping, names):
    """One line: 'a <-> b, c <-> d; 4 classes map to themselves'."""
    pairs = [f"{names[k]} <-> {names[m]}" for k, m in enumerate(mapping) if k < m]
    same = sum(1 for k, m in enumerate(mapping) if k == m)
    text = ", ".join(pairs) if pairs else "no pairs"
    return f"{text}; {same} class{'es' if same != 1 else ''} map{'s' if same == 1 else ''} to {'themselves' if same != 1 else 'itself'}"
