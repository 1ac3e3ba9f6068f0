"""The reference LZW algorithm of the design document, transcribed literally: what the codec is tested against."""

from __future__ import annotations


def reference_encode(ids, V, C, M, D, seed=()):
    """The reference algorithm, literally, with the codebook starting as ``seed`` (ids ``V ..`` in order; empty by
    default, as in the paper)."""
    codebook = {tuple(run): V + k for k, run in enumerate(seed)}
    next_id = V + len(seed)
    buf = []
    out = []

    def emit(b):
        out.append(b[0] if len(b) == 1 else codebook[tuple(b)])

    for x in ids:
        if x in D:
            if buf:
                emit(buf)
            out.append(x)
            buf = []
            continue
        buf.append(x)
        if len(buf) >= 2 and tuple(buf) not in codebook:
            if next_id < V + C:
                codebook[tuple(buf)] = next_id
                next_id += 1
            emit(buf[:-1])
            buf = [x]
        if len(buf) == M:
            emit(buf)
            buf = []
    if buf:
        emit(buf)
    return out, codebook
