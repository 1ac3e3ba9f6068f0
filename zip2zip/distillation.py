"""Teacher signals from the frozen base model: what it knows, aligned to the zip2zip model's positions.

Code `t` of a compressed row covers base positions `s(t) .. e(t)`; after reading codes `c_0 .. c_t` the zip2zip
model has read the same text as the base model after base token `e(t)`, so the base model reading the
*uncompressed* row (adapters disabled, no second copy in memory) is an exact, free teacher at every position.
"""

from __future__ import annotations

import torch

__all__ = ["first_token_distillation", "first_token_log_probs", "hypertoken_first_ids"]


def hypertoken_first_ids(
    codebook: torch.Tensor | None,
    accept_limits: torch.Tensor,
    candidates: torch.Tensor | None,
    num_slots: int,
) -> torch.Tensor:
    """First constituent of every hypertoken slot a position can emit: `(B, T, num_slots)` base ids.

    Slot `k` holds `codebook[b, k, 0]`; where the position has a `KwKwK` candidate, slot `accept_limits - 1`
    holds `candidates[b, t, 0]` instead (the entry the code would create and use in one step). Slots that are
    empty or not acceptable get id 0: their probability is exactly 0 (their logit is `-inf`), so wherever they
    are summed they add nothing.
    """
    B, T = accept_limits.shape
    device = accept_limits.device
    first = torch.zeros((B, num_slots), dtype=torch.long, device=device)
    if codebook is not None and codebook.shape[1] and num_slots:
        K = min(codebook.shape[1], num_slots)
        first[:, :K] = codebook[:, :K, 0].clamp(min=0)
    first = first[:, None, :].expand(B, T, num_slots).clone()
    if candidates is not None and num_slots:
        has = candidates[..., 0] >= 0
        if bool(has.any()):
            rows, cols = has.nonzero(as_tuple=True)
            slots = accept_limits[rows, cols] - 1
            inside = (slots >= 0) & (slots < num_slots)
            rows, cols, slots = rows[inside], cols[inside], slots[inside]
            first[rows, cols, slots] = candidates[rows, cols, 0]
    return first


def first_token_log_probs(
    logits: torch.Tensor, first_ids: torch.Tensor, base_vocab_size: int
) -> torch.Tensor:
    """`log q1(x)`: the zip2zip model's log-probability that the next code *starts with* base token `x`.

    `logits` `(N, V + C)` are the model's (masked) logits at `N` positions, `first_ids` `(N, S)` the first
    constituent of hypertoken slots `0 .. S-1` there (:func:`hypertoken_first_ids`). With `q = softmax(logits)`,

        q1(x) = q(x) + sum over slots k with first_ids[k] == x of q(V + k)        (x < V)

    i.e. the probability of the base code `x` plus that of every hypertoken whose phrase starts with `x`. Masked
    slots (`-inf`) have `q = 0` and add nothing; `q1` sums to 1 over the base vocabulary. Computed in log space
    (`logaddexp` of the base term and the summed hypertoken mass), so tokens far in the tail stay finite.
    """
    V = base_vocab_size
    log_q = torch.log_softmax(logits.float(), dim=-1)
    S = first_ids.shape[-1]
    if S == 0:
        return log_q[:, :V]
    hyper = log_q[:, V : V + S].exp()
    mass = torch.zeros_like(log_q[:, :V]).scatter_add(1, first_ids, hyper)
    # clamp (not log(0)): a zero mass would give -inf and NaN gradients through logaddexp.
    return torch.logaddexp(log_q[:, :V], mass.clamp(min=torch.finfo(mass.dtype).tiny).log())


def first_token_distillation(
    logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    first_ids: torch.Tensor,
    base_vocab_size: int,
) -> torch.Tensor:
    r"""Per-position `KL(p || q1)` between the base model's next-token distribution and the zip2zip model's.

    The self-distillation loss of [`Zip2ZipSFTTrainer`] (`distillation_weight > 0`). At compressed position `t`
    the zip2zip model has read codes `c_0 .. c_t`, which decode to base ids `b_0 .. b_e` (`e` = the base index
    of `c_t`'s last constituent), and predicts the next code `c_{t+1}`, whose phrase starts at `b_{e+1}`. The
    frozen base model, reading the uncompressed `b_0 .. b_e` (the same text), predicts `p(x) = p(b_{e+1} = x |
    b_0 .. b_e)`. The zip2zip model's distribution `q` over codes induces a distribution over that same next base
    token, `q1(x)` = the probability that the next code starts with `x` (:func:`first_token_log_probs`: base code
    `x` plus every acceptable hypertoken whose first constituent is `x`). Both are distributions over the next
    base token given the same text, and the true one minimises both this loss and the compressed cross-entropy,
    so the two objectives agree; the KL gives a dense target over the whole vocabulary at every position instead
    of one observed code.

    Why the first token only: the base model's probability of a whole hypertoken phrase (and of the encoder
    stopping there, which decides whether LZW emits that code) is known from one teacher-forced pass only for the
    phrase that actually follows; scoring every acceptable hypertoken would need a base pass per candidate
    continuation. The first-token marginal is exact for every code at once.

    Args:
        logits: `(N, V + C)` zip2zip logits at the scored positions (masked slots `-inf`).
        teacher_logits: `(N, V)` base-model logits at the aligned base positions.
        first_ids: `(N, S)` first constituent of hypertoken slots `0 .. S-1` at those positions.
        base_vocab_size: `V`.

    Returns:
        `(N,)` KL divergences in nats (0 when `q1 == p`).
    """
    log_q1 = first_token_log_probs(logits, first_ids, base_vocab_size)
    log_p = torch.log_softmax(teacher_logits.float(), dim=-1)
    return (log_p.exp() * (log_p - log_q1)).sum(-1)
