"""The codec's type rule: integer ids of any kind become Python ints, anything else fails at its position.

Every entry point takes Python ints, numpy/torch integer scalars and integer arrays/tensors (converted to
Python ints, so no fixed-width arithmetic can overflow) and rejects bools, floats, complex numbers, text,
``None`` and nested containers with a TypeError naming the position in the whole stream.
"""

import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zip2zip.model.lzw import LZWCodec

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NUMPY_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]
TORCH_DTYPES = [torch.int32, torch.int64]


def all_python_ints(values) -> bool:
    return all(type(v) is int for v in values)


def error_of(fn, *args):
    """``(result, None)`` or ``(None, exception)``."""
    try:
        return fn(*args), None
    except (TypeError, ValueError) as error:
        return None, error


def at_position(position: int) -> str:
    return rf"at position {position}\b"


@st.composite
def codec_and_ids(draw, max_vocab=6, max_len=60):
    V = draw(st.integers(2, max_vocab))
    C = draw(st.integers(0, 20))
    M = draw(st.integers(1, 5))
    D = draw(st.sets(st.integers(0, V - 1), max_size=min(2, V - 1)))
    ids = draw(st.lists(st.integers(0, V - 1), max_size=max_len))
    return LZWCodec(V, C, M, D), ids


def non_ids():
    """Values that are not token ids, including ones equal to an int (3.0, True) and one-element tensors."""
    return st.one_of(
        st.booleans(),
        st.integers(0, 5).map(float),
        st.floats(allow_nan=True),
        st.complex_numbers(),
        st.text(max_size=3),
        st.none(),
        st.lists(st.integers(0, 5), max_size=2),
        st.tuples(st.integers(0, 5)),
        st.sampled_from(
            [
                np.float64(2.0),
                np.bool_(True),
                np.array([1]),
                torch.tensor(True),
                torch.tensor([2]),
                torch.tensor(1.0),
            ]
        ),
    )


# ------------------------------------------------------------------ the examples found by fuzzing


@pytest.mark.parametrize(
    ("call", "position", "shown"),
    [
        (lambda c: c.decode([3, 3.0]), 1, "3.0 (float)"),
        (lambda c: c.decode([1, True]), 1, "True (bool)"),
        (lambda c: c.encode([1, 2, 2.0, True]), 2, "2.0 (float)"),
        (lambda c: c.decode([5, 6, 5, 6, 5, 6, 49152, 49152.0]), 7, "49152.0 (float)"),
        (lambda c: c.decode([1, [2]]), 1, "[2] (list)"),
        (lambda c: c.decode([1, 2j]), 1, "2j (complex)"),
        (lambda c: c.encode([4, 5, None]), 2, "None (NoneType)"),
        (lambda c: c.encode([4, "5"]), 1, "'5' (str)"),
    ],
)
def test_fuzzed_examples_are_rejected_at_their_position(call, position, shown):
    codec = LZWCodec(49152, 2048, 4, [0, 1, 2])
    with pytest.raises(TypeError, match=at_position(position)) as raised:
        call(codec)
    assert shown in str(raised.value)
    assert "pass" in str(raised.value), "the error says what to pass instead"


def test_feed_names_the_position_in_the_whole_stream():
    decoder = LZWCodec(10, 10, 3).new_decoder()
    for code in [1, 2, 1, 2, 3]:
        decoder.feed(code)
    with pytest.raises(TypeError, match=at_position(5)):
        decoder.feed(2.5)
    with pytest.raises(TypeError, match=at_position(6)):
        decoder.feed_many([1, "x"])
    assert decoder.num_codes == 6, "the good code before the bad one was decoded"


def test_mixed_numpy_int32_streams_do_not_overflow():
    codec = LZWCodec(49152, 2048, 4)
    rng = np.random.default_rng(0)
    ids = rng.choice([49151, 49150, 48000, 17], size=400).tolist()
    codes = codec.encode(ids)
    assert max(codes) >= 49152, "the stream merges"
    # Each value first as a Python int, its repeats as numpy int32 (which a set of the values would drop).
    mixed = ids[:50] + [np.int32(i) for i in ids[50:]]
    assert set(ids[:50]) == set(ids)
    assert codec.encode(mixed) == codes
    mixed_codes = [np.int32(c) if c in codes[:k] else c for k, c in enumerate(codes)]
    assert codec.decode(mixed_codes) == ids
    assert all_python_ints(codec.encode(mixed)) and all_python_ints(codec.decode(mixed_codes))


def test_uint8_array_does_not_overflow():
    codec = LZWCodec(256, 64, 4)
    ids = [250, 251, 250, 251, 250, 251, 252] * 5
    codes = codec.encode(np.array(ids, dtype=np.uint8))
    assert codes == codec.encode(ids) and all_python_ints(codes)
    assert codec.encode(ids[:7] + list(np.array(ids[7:], dtype=np.uint8))) == codes
    assert codec.encode(iter(np.array(ids, dtype=np.uint8))) == codes
    assert codec.decode(np.array(codes, dtype=np.uint16)) == ids


# ------------------------------------------------------------------ rejection in every entry point


@SETTINGS
@given(codec_and_ids(), non_ids(), st.data())
def test_non_ids_are_rejected_at_their_position_in_every_entry_point(case, bad, data):
    codec, ids = case
    p = data.draw(st.integers(0, len(ids)))
    bad_ids = ids[:p] + [bad] + ids[p:]
    codes = codec.encode(ids)
    q = data.draw(st.integers(0, len(codes)))
    bad_codes = codes[:q] + [bad] + codes[q:]

    for call, position in [
        (lambda: codec.encode(bad_ids), p),
        (lambda: codec.encode_with_codebook(tuple(bad_ids)), p),
        (lambda: codec.encode_segments([bad_ids[:p], bad_ids[p:]]), p),
        (lambda: codec.new_decoder().encode_greedy(bad_ids), p),
        (lambda: codec.decode(bad_codes), q),
        (lambda: codec.decode_with_codebook(iter(bad_codes)), q),
        (lambda: codec.trace(bad_codes), q),
        (lambda: codec.new_decoder().feed_many(bad_codes), q),
    ]:
        with pytest.raises(TypeError, match=at_position(position)) as raised:
            call()
        assert type(bad).__name__ in str(raised.value)

    with pytest.raises(TypeError, match=rf"^sequence 1 of the batch: base id {at_position(p)}"):
        codec.batch_encode([ids, bad_ids])
    with pytest.raises(TypeError, match=rf"^sequence 1 of the batch: code {at_position(q)}"):
        codec.batch_decode([codes, bad_codes])
    with pytest.raises(TypeError, match=rf"^sequence 0 of the batch: code {at_position(q)}"):
        codec.batch_trace([bad_codes])

    decoder = codec.new_decoder()
    for code in codes[:q]:
        decoder.feed(code)
    assert not decoder.can_accept(bad)
    with pytest.raises(TypeError, match=at_position(q)):
        decoder.feed(bad)


@SETTINGS
@given(st.integers(2, 10), non_ids(), st.data())
def test_constructor_rejects_non_integers(V, bad, data):
    disabled = data.draw(st.lists(st.integers(0, V - 1), max_size=4))
    p = data.draw(st.integers(0, len(disabled)))
    with pytest.raises(TypeError, match=rf"disabled id {at_position(p)}"):
        LZWCodec(V, 8, 3, disabled[:p] + [bad] + disabled[p:])
    for name in ("base_vocab_size", "max_codebook_size", "max_subtokens"):
        kwargs = {"base_vocab_size": V, "max_codebook_size": 8, "max_subtokens": 3, name: bad}
        with pytest.raises(TypeError, match=rf"^{name} must be an int"):
            LZWCodec(**kwargs)


def test_constructor_accepts_numpy_and_torch_integers_as_python_ints():
    codec = LZWCodec(np.int64(10), torch.tensor(5), np.uint8(3), np.array([1, 2], dtype=np.int16))
    assert (codec.base_vocab_size, codec.max_codebook_size, codec.max_subtokens) == (10, 5, 3)
    assert all_python_ints([codec.base_vocab_size, codec.max_codebook_size, codec.max_subtokens])
    assert codec.disabled_ids == {1, 2} and all_python_ints(codec.disabled_ids)
    with pytest.raises(TypeError, match="disabled id"):
        LZWCodec(10, 5, 3, None)


@pytest.mark.parametrize(
    ("stream", "fragment"),
    [
        ("hello", "tokenize text first"),
        (b"\x01\x02", "tokenize text first"),
        (5, "expected a sequence of base ids"),
        (None, "expected a sequence of base ids"),
        (np.array(3), "expected a sequence of base ids"),
        (torch.tensor(3), "expected a sequence of base ids"),
        (np.zeros((2, 2), dtype=np.int64), "position 0 must be an integer id.*flat sequence"),
        (np.array([1.0, 2.0]), "position 0 must be an integer id.*float"),
        (torch.tensor([1, 0], dtype=torch.bool), "position 0 must be an integer id.*bool"),
    ],
)
def test_streams_that_are_not_flat_integer_sequences_are_rejected(stream, fragment):
    codec = LZWCodec(10, 5, 3)
    with pytest.raises(TypeError, match=fragment):
        codec.encode(stream)
    with pytest.raises(TypeError, match=fragment.replace("base id", "code")):
        codec.decode(stream)


def test_range_and_type_errors_report_the_first_bad_position():
    codec = LZWCodec(5, 4, 3)
    with pytest.raises(ValueError, match=r"base id 9 at position 1"):
        codec.encode([1, 9, 2.5])
    with pytest.raises(TypeError, match=at_position(1)):
        codec.encode([1, 2.5, 9])
    with pytest.raises(ValueError, match=r"hypertoken id 8 at position 1"):
        codec.decode([1, 8, 2.5])
    with pytest.raises(TypeError, match=at_position(1)):
        codec.decode([1, 2.5, 8])


# ------------------------------------------------------------------ integer arrays equal lists of ints


@SETTINGS
@given(codec_and_ids(), st.sampled_from(NUMPY_DTYPES + TORCH_DTYPES))
def test_integer_arrays_of_every_dtype_give_the_same_result_as_lists(case, dtype):
    codec, ids = case
    codes = codec.encode(ids)

    def as_array(values):
        if isinstance(dtype, torch.dtype):
            return torch.tensor(values, dtype=dtype)
        return np.array(values, dtype=dtype)

    def as_scalars(values):
        return [as_array([v])[0] for v in values]

    def as_mixed(values):
        """Python ints first, numpy/torch scalars for the repeats (which a set of the values would drop)."""
        seen = set()
        return [v if v not in seen and not seen.add(v) else as_array([v])[0] for v in values]

    for convert in (as_array, as_scalars, as_mixed):
        assert codec.encode(convert(ids)) == codes
        assert codec.encode_with_codebook(convert(ids)) == codec.encode_with_codebook(ids)
        assert codec.encode_segments([convert(ids), convert(ids)]) == codec.encode_segments([ids, ids])
        assert codec.decode(convert(codes)) == ids
        assert codec.trace(convert(codes)) == codec.trace(codes)
        steps = codec.new_decoder().feed_many(convert(codes))
        assert steps == codec.new_decoder().feed_many(codes)
        decoder = codec.new_decoder()
        assert [decoder.feed(c) for c in as_scalars(codes)] == steps
        assert all_python_ints(codec.encode(convert(ids))) and all_python_ints(codec.decode(convert(codes)))
        assert all_python_ints(codec.trace(convert(codes)).codes)
    if ids:
        batch = as_array([ids, ids])
        assert codec.batch_encode(batch) == [codes, codes]
        assert codec.batch_decode(as_array([codes, codes])) == [ids, ids]


# ------------------------------------------------------------------ decode and feed agree on any stream


def fuzzed_items(V, C):
    ids = st.integers(-2, V + C + 1)
    return st.one_of(
        ids,
        ids,
        ids,
        ids,
        ids.map(np.int32),
        ids.map(np.int64),
        ids.map(float),
        st.booleans(),
        st.none(),
        st.lists(ids, max_size=2),
    )


@settings(max_examples=1500, deadline=None)
@given(st.integers(2, 6), st.integers(0, 10), st.integers(1, 4), st.data())
def test_decode_feed_many_and_feed_agree_on_fuzzed_streams(V, C, M, data):
    codec = LZWCodec(V, C, M, data.draw(st.sets(st.integers(0, V - 1), max_size=1)))
    codes = data.draw(st.lists(fuzzed_items(V, C), max_size=16))

    decoded, decode_error = error_of(codec.decode, codes)
    traced, trace_error = error_of(codec.trace, codes)
    decoder = codec.new_decoder()
    steps, many_error = error_of(decoder.feed_many, codes)
    one_by_one = codec.new_decoder()
    single_error = None
    for code in codes:
        _, single_error = error_of(one_by_one.feed, code)
        if single_error is not None:
            break

    errors = [decode_error, trace_error, many_error, single_error]
    if decode_error is None:
        assert errors == [None] * 4
        assert traced.base_ids == decoder.base_ids == one_by_one.base_ids == decoded
        assert [i for step in steps for i in step.phrase] == decoded
        assert all_python_ints(decoded)
    else:
        assert all(type(e) is type(decode_error) for e in errors), errors
        assert len({str(e) for e in errors}) == 1, errors
        assert re.search(r"at position \d+", str(decode_error))
        assert decoder.base_ids == one_by_one.base_ids


def test_codec_runs_without_numpy_or_torch(tmp_path):
    """The codec is stdlib only: its two files alone, in a folder of their own (as an exported repo holds
    them), load and work without numpy or torch."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import zip2zip.model.lzw

    package = tmp_path / "codec"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("lzw.py", "lzw_inputs.py", "lzw_decoder.py", "lzw_seed.py", "lzw_state.py"):
        shutil.copy(Path(zip2zip.model.lzw.__file__).with_name(name), package / name)
    script = (
        "import sys\n"
        "from codec import lzw\n"
        "codec = lzw.LZWCodec(10, 10, 3)\n"
        "assert codec.decode(codec.encode([1, 2, 1, 2, 1])) == [1, 2, 1, 2, 1]\n"
        "try:\n    codec.decode([1, 2.0])\nexcept TypeError as error:\n    assert 'position 1' in str(error)\n"
        "assert 'numpy' not in sys.modules and 'torch' not in sys.modules, sorted(sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("bad", [299.0, True, 2.5])
def test_the_tokenizer_and_the_model_apply_the_codec_type_rule(bad):
    from _tiny_models import tiny_base_model
    from _tiny_tokenizers import tiny_bpe_tokenizer

    from zip2zip import Zip2ZipForCausalLM, Zip2ZipTokenizer

    base = tiny_bpe_tokenizer()
    model = Zip2ZipForCausalLM.from_base(
        tiny_base_model(vocab_size=len(base)), tokenizer=base, max_codebook_size=16
    )
    tok = Zip2ZipTokenizer.from_base(base, model.config)
    ids = tok("the cat sat on the mat. the cat sat")["input_ids"]
    with pytest.raises(TypeError, match=at_position(1)):
        tok.decode([ids[0], bad])
    with pytest.raises(TypeError, match=at_position(1)):
        tok([ids[0], bad])  # base ids in: the same rule, not int(x)
    with pytest.raises(TypeError, match=at_position(1)):
        tok([[ids[0], ids[1]], [ids[0], bad]])
    rows = torch.tensor([[ids[0], bad]], dtype=torch.bool if bad is True else torch.float32)
    with pytest.raises(TypeError, match=at_position(0)):
        model.prepare_codebook(rows)
    for call in (lambda: model(rows), lambda: model.generate(rows, max_new_tokens=1)):
        with pytest.raises(
            TypeError, match=rf"input_ids must hold integer ids, got Tensor of dtype {rows.dtype}"
        ):
            call()


@pytest.mark.parametrize(
    ("ids", "position", "shown"),
    [
        ([5, 2.7, 9], 1, r"2\.7 \(float\)"),
        ([5, True, 9], 1, r"True \(bool\)"),
        ([5, np.float64(7.9)], 1, r"np\.float64\(7\.9\)"),
        ([5, "a"], 1, r"'a' \(str\): tokenize text first"),
        ([5, None], 1, r"None \(NoneType\)"),
        ([2.0, 5], 0, r"2\.0 \(float\)"),
    ],
)
def test_tokenizer_ids_follow_the_codec_rule_and_name_the_position(ids, position, shown):
    from _tiny_tokenizers import tiny_bpe_tokenizer

    from zip2zip import Zip2ZipTokenizer

    tok = Zip2ZipTokenizer.from_base(tiny_bpe_tokenizer(), max_codebook_size=16)
    with pytest.raises(
        TypeError, match=rf"base id at position {position} must be an integer id, got {shown}"
    ):
        tok(ids)
    codes = [int(i) for i in ids if type(i) is int]
    assert (
        tok([np.int64(i) for i in codes])["input_ids"] == tok(codes)["input_ids"]
    )  # integer scalars are ids


# ------------------------------------------------------------------ the codec's edges (issue: second round)


@pytest.mark.parametrize("stream", [{6, 5}, frozenset({6, 5}), {5: "a", 6: "b"}, {5: 1}.keys()])
def test_unordered_containers_are_not_streams(stream):
    codec = LZWCodec(10, 5, 3)
    for call in (codec.encode, codec.decode, codec.trace, codec.new_decoder().feed_many):
        with pytest.raises(TypeError, match=r"not in stream order; pass a list"):
            call(stream)
    with pytest.raises(TypeError, match=r"sequence 0 of the batch: .*not in stream order"):
        codec.batch_decode([stream])
    # The disabled ids are a set: any container of them is fine.
    assert LZWCodec(10, 5, 3, disabled_ids={0, 1}).disabled_ids == {0, 1}


def test_a_trace_does_not_change_when_the_caller_changes_its_list():
    codec = LZWCodec(10, 8, 3)
    codes = codec.encode([5, 6, 5, 6, 5, 6])
    for trace in (codec.trace(codes), codec.trace(codes, exclusions=True)):
        before = list(trace.codes)
        codes.append(5)
        codes[0] = 7
        assert trace.codes == before and trace.codes is not codes


@pytest.mark.parametrize("scalar", [torch.tensor(5.0), torch.tensor(True), np.float32(5.0), np.bool_(True)])
def test_a_scalar_of_another_dtype_gets_the_integer_hint_not_the_batch_hint(scalar):
    codec = LZWCodec(10, 8, 3)
    for call in (codec.new_decoder().feed, lambda x: codec.decode([5, x])):
        with pytest.raises(
            TypeError, match=r"must be an integer id, got .*: pass (Python ints or )?integer"
        ) as error:
            call(scalar)
        assert "batch" not in str(error.value)


def test_a_setting_given_as_text_is_named_without_the_ids_hint():
    with pytest.raises(TypeError, match=r"max_subtokens must be an int, got '4' \(str\): pass a Python int"):
        LZWCodec(10, 8, "4")
