"""Property tests for seeded codebooks: the codec starts from an initial codebook, LZW growth goes on after it.

The reference is the design document's algorithm transcribed literally, with its codebook starting as the seed.
"""

import pytest
from _lzw_reference import reference_encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zip2zip.model.lzw import LZWCodec
from zip2zip.model.lzw_seed import close_prefixes, restrict_initial_codebook


@st.composite
def seeded_codec_and_ids(draw, max_vocab=6, max_len=80):
    """Small vocabularies and seeds of up to 16 runs, so seeded, created, full and KwKwK cases all happen."""
    V = draw(st.integers(2, max_vocab))
    C = draw(st.integers(0, 24))
    M = draw(st.integers(1, 5))
    D = draw(st.sets(st.integers(0, V - 1), max_size=min(2, V - 1)))
    free = [i for i in range(V) if i not in D]
    runs = draw(st.lists(st.lists(st.sampled_from(free), min_size=2, max_size=5), max_size=8)) if free else []
    seed = restrict_initial_codebook(close_prefixes(runs), M, D)[:C]
    ids = draw(st.lists(st.integers(0, V - 1), max_size=max_len))
    return LZWCodec(V, C, M, D, initial_codebook=seed), seed, ids


SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(seeded_codec_and_ids())
def test_seeded_encoder_matches_the_reference_started_from_the_same_dictionary(case):
    codec, seed, ids = case
    codes, codebook = codec.encode_with_codebook(ids)
    expected, expected_codebook = reference_encode(
        ids, codec.base_vocab_size, codec.max_codebook_size, codec.max_subtokens, codec.disabled_ids, seed
    )
    assert codes == expected
    assert {entry: code for code, entry in codebook.to_dict().items()} == expected_codebook
    assert codebook.entries[: len(seed)] == tuple(seed) and codebook.initial_size == len(seed)
    assert codebook.created_at[: len(seed)] == (0,) * len(seed)
    assert codes == codec.encode(ids)


@SETTINGS
@given(seeded_codec_and_ids())
def test_seeded_round_trip_and_the_decoder_rebuilds_the_encoder_codebook(case):
    codec, seed, ids = case
    codes, codebook = codec.encode_with_codebook(ids)
    decoded, decoder_codebook = codec.decode_with_codebook(codes)
    assert decoded == ids
    assert decoder_codebook.entries == codebook.entries
    assert decoder_codebook.created_at == codebook.created_at
    assert decoder_codebook.initial_size == len(seed)
    assert len(codebook) <= codec.max_codebook_size


@SETTINGS
@given(seeded_codec_and_ids())
def test_seeded_decoder_equals_the_encoder_on_every_prefix(case):
    codec, seed, ids = case
    codes = codec.encode(ids)
    trace = codec.trace(codes)
    decoder = codec.new_decoder()
    assert decoder.codebook.entries == tuple(seed) and decoder.base_ids == []
    for t, code in enumerate(codes):
        assert decoder.accept_limit == trace.accept_limits[t] >= len(seed)
        assert decoder.candidate == trace.candidates[t]
        assert decoder.can_accept(code)
        decoder.feed(code)
        # The decoder has read the base ids of codes[:t + 1]; the encoder that reads the same ids builds the
        # same codebook, entry for entry and id for id.
        encoder_codes, encoder_codebook = codec.encode_with_codebook(decoder.base_ids)
        assert decoder.codebook.entries == encoder_codebook.entries
        assert decoder.base_ids == codec.decode(codes[: t + 1])
        assert codec.decode(encoder_codes) == decoder.base_ids
    assert decoder.base_ids == ids


@SETTINGS
@given(seeded_codec_and_ids())
def test_seeded_accept_set_is_exactly_what_the_decoder_accepts(case):
    codec, _, ids = case
    codes = codec.encode(ids[:24])
    V = codec.base_vocab_size
    trace = codec.trace(codes)
    decoder = codec.new_decoder()
    for t in range(len(codes) + 1):
        for code in range(V + codec.max_codebook_size):
            probe = decoder.copy()
            try:
                probe.feed(code)
                accepted = True
            except ValueError:
                accepted = False
            assert accepted == (code < V + trace.accept_limits[t])
        if t < len(codes):
            decoder.feed(codes[t])


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seeded_codec_and_ids(max_len=1), st.data())
def test_arbitrary_code_streams_decode_like_the_seeded_encoder_or_raise(case, data):
    codec, _, _ = case
    V, C = codec.base_vocab_size, codec.max_codebook_size
    codes = data.draw(st.lists(st.integers(-2, V + C + 1), max_size=24))
    try:
        ids, codebook = codec.decode_with_codebook(codes)
    except ValueError as error:
        assert "position" in str(error)
        return
    assert codebook.entries == codec.encode_with_codebook(ids)[1].entries
    assert codec.decode(codec.encode(ids)) == ids


@SETTINGS
@given(seeded_codec_and_ids(), st.data())
def test_seeded_segments_share_one_codebook(case, data):
    codec, _, ids = case
    assert codec.encode_segments([ids]) == codec.encode(ids)
    cut = data.draw(st.integers(0, len(ids)))
    codes = codec.encode_segments([ids[:cut], ids[cut:]])
    assert codec.decode(codes) == ids


def test_a_seed_compresses_from_the_first_token_and_growth_continues_after_it():
    plain = LZWCodec(10, 8, 3, [0])
    seeded = LZWCodec(10, 8, 3, [0], initial_codebook=[[5, 6], [5, 6, 7], [8, 9]])
    assert plain.encode([5, 6, 7, 8, 9]) == [5, 6, 7, 8, 9]
    codes, codebook = seeded.encode_with_codebook([5, 6, 7, 8, 9, 8])
    assert codes == [11, 12, 8]  # (5, 6, 7), (8, 9), 8
    assert codebook.to_dict() == {10: (5, 6), 11: (5, 6, 7), 12: (8, 9), 13: (8, 9, 8)}
    assert codebook.created_at == (0, 0, 0, 2)
    assert seeded.decode(codes) == [5, 6, 7, 8, 9, 8]
    # C counts the seed: with room for one created entry, growth stops after it.
    small = LZWCodec(10, 4, 3, [0], initial_codebook=[[5, 6], [5, 6, 7], [8, 9]])
    assert len(small.encode_with_codebook([5, 6, 7, 8, 9, 8, 7, 1, 2, 1])[1]) == 4


@pytest.mark.parametrize(
    "seed, error, fragment",
    [
        ([[5, 6, 7]], ValueError, "prefix [5, 6] is not an entry before it"),
        ([[5, 6, 7], [5, 6]], ValueError, "prefix [5, 6] is not an entry before it"),
        ([[5]], ValueError, "2 to max_subtokens=3"),
        ([[5, 6], [5, 6, 7], [5, 6, 7, 8]], ValueError, "2 to max_subtokens=3"),
        ([[5, 10]], ValueError, "outside the base vocabulary [0, 10)"),
        ([[5, 0]], ValueError, "id 0 is a disabled id"),
        ([[5, 6], [5, 6]], ValueError, "the same run as entry 0"),
        ([[1, 2], [2, 3], [3, 4], [4, 5], [5, 6], [6, 7], [7, 8], [8, 9], [9, 1]], ValueError, "9 entries"),
        ([[5, 6.0]], TypeError, "integer base ids"),
        ("56", TypeError, "list of base-token runs"),
        ([5, 6], TypeError, "entry 0 must be a list"),
    ],
)
def test_invalid_seeds_are_refused_naming_the_entry(seed, error, fragment):
    with pytest.raises(error, match="initial_codebook") as raised:
        LZWCodec(10, 8, 3, [0], initial_codebook=seed)
    assert fragment in str(raised.value)


def test_close_prefixes_and_restrict_keep_a_seed_valid():
    runs = [(5, 6, 7, 8), (1, 2), (5, 6, 9)]
    closed = close_prefixes(runs)
    assert closed == [(5, 6), (5, 6, 7), (5, 6, 7, 8), (1, 2), (5, 6, 9)]
    restricted = restrict_initial_codebook(closed, 3, {2})
    assert restricted == [(5, 6), (5, 6, 7), (5, 6, 9)]
    LZWCodec(10, 8, 3, [2], initial_codebook=restricted)  # still a valid seed
