"""What the LZW codec accepts as ids: one type rule for every entry point of :mod:`lzw`.

Python ints, numpy/torch integer scalars and 1-d integer arrays/tensors are converted to Python ints (so
results are plain ints and no fixed-width overflow can happen); bools, floats, complex numbers, text, None
and nested containers are rejected with a TypeError naming the position in the whole stream, the value and
what to pass instead. A stream is ordered: sets and mappings are refused whole. Standard library only (numpy
and torch are recognised by duck typing), like the codec. The tokenizer (``tok(ids)``, ``tok.decode``) and the
model (``forward``, ``generate``) apply this same rule.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Set

__all__ = [
    "check_base_ids",
    "describe",
    "int_prefix",
    "map_batch",
    "require_int",
    "require_int_dtype",
    "to_int",
    "to_list",
    "type_error",
]


_TEXT = (str, bytes, bytearray)
# What the codec takes as a set; every other input is a stream, whose order is its meaning.
_SETS = ("disabled id",)


def to_int(value: object) -> int | None:
    """``value`` as a Python int if it is an integer id (Python, numpy or torch, any width), else ``None``.

    Stdlib only, so numpy and torch are recognised by duck typing: ``operator.index`` accepts their integer
    scalars and 0-d arrays; bools (Python, ``numpy.bool``, bool tensors) and anything with dimensions (a
    one-element tensor also has ``__index__``) are rejected first.
    """
    if (
        isinstance(value, bool)
        or getattr(value, "ndim", 0)
        or str(getattr(value, "dtype", "")).endswith("bool")
    ):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def require_int(value: object, subject: str, noun: str = "an integer id") -> int:
    """``value`` as a Python int, or a TypeError saying ``subject`` (``"code at position 3"``) must be ``noun``."""
    converted = value if type(value) is int else to_int(value)
    if converted is None:
        raise type_error(subject, value, noun)
    return converted


def describe(value: object) -> str:
    text = repr(value)
    kind = type(value).__name__ + (f" of dtype {value.dtype}" if hasattr(value, "dtype") else "")
    return f"{text if len(text) <= 60 else text[:57] + '...'} ({kind})"


def type_error(subject: str, value: object, noun: str = "an integer id") -> TypeError:
    if noun == "an int":  # a setting (base_vocab_size, max_subtokens...), not an id
        hint = "pass a Python int"
    elif isinstance(value, _TEXT):
        hint = "tokenize text first and pass its ids"
    elif getattr(value, "ndim", None) == 0:  # a numpy/torch scalar of another dtype (a 0-d tensor iterates)
        hint = "pass integer ids (int(x), array.astype(int), tensor.long())"
    elif isinstance(value, Iterable) or getattr(value, "ndim", 0):
        hint = "pass one flat sequence of ids (a batch of sequences goes to the batch_* methods)"
    else:
        hint = "pass Python ints or integer numpy/torch values (int(x), array.astype(int), tensor.long())"
    return TypeError(f"{subject} must be {noun}, got {describe(value)}: {hint}")


def to_list(values: Iterable[int], what: str, where: str = "") -> list:
    """``values`` as a list (numpy arrays and torch tensors through ``tolist``), elements unchecked.

    Sets and mappings are refused as streams: they hold ids in no stream order (``{6, 5}`` iterates as
    ``5, 6``); only the disabled ids are a set.
    """
    if type(values) is list:
        return values
    if isinstance(values, (Set, Mapping)) and what not in _SETS:
        why = "iterates over its keys" if isinstance(values, Mapping) else "holds ids in hash order"
        raise TypeError(
            f"expected a sequence of {what}s{where}, got {describe(values)}: a {type(values).__name__} {why}, not "
            "in stream order; pass a list, a tuple, or a 1-d numpy array or torch tensor of integer ids"
        )
    if hasattr(values, "tolist") and not isinstance(values, _TEXT):
        listed = values.tolist()
        if isinstance(listed, list):
            return listed
    elif isinstance(values, Iterable) and not isinstance(values, _TEXT):
        return list(values)
    raise TypeError(
        f"expected a sequence of {what}s{where}, got {describe(values)}: pass a list, a tuple, or a 1-d numpy "
        "array or torch tensor of integer ids (tokenize text first)"
    )


def require_int_dtype(values: object, subject: str) -> None:
    """Raise a TypeError when ``values`` (a numpy array or torch tensor) holds no integer ids: floats, bools.

    The array form of the element rule, for callers that work on whole tensors (the model's ``forward`` and
    ``generate``); the codec checks element by element and reports the first bad position instead.
    """
    dtype = str(getattr(values, "dtype", ""))
    kind = dtype.removeprefix("torch.")
    if dtype and not (kind.startswith(("int", "uint", "long")) or kind in ("short", "byte")):
        raise TypeError(
            f"{subject} must hold integer ids, got {type(values).__name__} of dtype {dtype}: pass token ids as "
            "integers (tensor.long(), array.astype(int)); bools and floats are not ids"
        )


def int_prefix(
    values: Iterable[int], what: str, start: int = 0, where: str = ""
) -> tuple[list[int], TypeError | None]:
    """The ids of ``values`` as Python ints, up to the first one that is not an integer id.

    Returns that prefix and the TypeError for the element after it (``None`` when every element is an id),
    so that callers process the prefix first and report the first bad position of the stream, whatever
    is wrong there. ``start`` is the position of ``values[0]`` in the whole stream. A list of Python ints
    (the usual input) is returned as it is after one pass over its element types.
    """
    values = to_list(values, what, where)
    if list(map(type, values)).count(int) == len(values):
        return values, None
    out = []
    for index, value in enumerate(values):
        if type(value) is not int:
            value = to_int(value)
            if value is None:
                return out, type_error(f"{what} at position {start + index}{where}", values[index])
        out.append(value)
    return out, None


def map_batch(method, batch: Iterable[Iterable[int]]) -> list:
    """``method`` on every sequence of ``batch``; an error names the sequence it came from."""
    results = []
    for index, sequence in enumerate(to_list(batch, "sequence")):
        try:
            results.append(method(sequence))
        except (TypeError, ValueError) as error:
            raise type(error)(f"sequence {index} of the batch: {error}") from None
    return results


def check_base_ids(
    base_vocab_size: int, ids: Iterable[int], start: int = 0, where: str = ""
) -> tuple[list[int], set[int]]:
    """``ids`` as a list of Python ints in the base vocabulary, and the set of distinct ids.

    Raises at the first bad position (counted from ``start``): TypeError for a value that is not an
    integer id, ValueError for an id outside the base vocabulary. The range is checked on the distinct
    ids (a few hundred in a 1024-token window) and only scanned for the position when it fails.
    """
    ids, error = int_prefix(ids, "base id", start, where)
    distinct = set(ids)
    if distinct and (min(distinct) < 0 or max(distinct) >= base_vocab_size):
        for position, i in enumerate(ids, start):
            if not 0 <= i < base_vocab_size:
                raise ValueError(
                    f"base id {i} at position {position}{where} is outside the base vocabulary "
                    f"[0, {base_vocab_size}); the codec encodes base token ids only"
                )
    if error is not None:
        raise error
    return ids, distinct
