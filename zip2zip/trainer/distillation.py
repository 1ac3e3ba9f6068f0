"""Teacher signals from the frozen base model: what it knows, aligned to the zip2zip model's positions.

Code `t` of a compressed row covers base positions `s(t) .. e(t)`; after reading codes `c_0 .. c_t` the zip2zip
model has read the same text as the base model after base token `e(t)`, so the base model reading the
*uncompressed* row (adapters disabled, no second copy in memory) is an exact, free teacher at every position.
"""

from __future__ import annotations

import torch

from zip2zip.utils.peft import core_model

__all__ = [
    "first_token_distillation",
    "first_token_log_probs",
    "hidden_state_distillation",
    "hypertoken_first_ids",
    "parse_layer_spec",
]


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


def parse_layer_spec(spec: str, num_layers: int) -> list[int]:
    """Indices into a model's `hidden_states` tuple (0 = embeddings, `num_layers` = the LM head's input).

    `"last"` is `[num_layers]`; `"last:K"` the last K; `"stride:K"` every K-th layer plus the last; `"all"`
    every layer output `1 .. num_layers`.
    """
    if not isinstance(spec, str):
        raise ValueError(
            f"hidden_distillation_layers must be a string such as 'last' or 'last:4', got {spec!r}"
        )
    name, _, count = spec.partition(":")
    if name in ("last", "all") and not count:
        return [num_layers] if name == "last" else list(range(1, num_layers + 1))
    if name in ("last", "stride") and count.isdigit() and int(count) >= 1:
        k = int(count)
        if name == "last":
            return list(range(max(1, num_layers - k + 1), num_layers + 1))
        return sorted({*range(k, num_layers + 1, k), num_layers})
    raise ValueError(
        f"hidden_distillation_layers={spec!r} is not one of 'last', 'last:K', 'stride:K' or 'all' (K >= 1)"
    )


def hidden_state_distillation(
    student: list[torch.Tensor], teacher: list[torch.Tensor], loss: str = "nmse"
) -> torch.Tensor:
    r"""Per-position distance between the zip2zip model's hidden states and the base model's, averaged over layers.

    Token distillation (Dobler et al. 2025) trains a new token's embedding so that the model's hidden states
    match those it has with the original sub-tokens; here every compressed position is such a case. At code `t`
    the zip2zip model has read the text of `b_0 .. b_e` (`e` = the base index of the code's last constituent),
    and the frozen base model reading those base tokens has the states the zip2zip model should have. At the
    last layer (the LM head's input) a perfect match makes the next-base-token distribution the base model's.

    Args:
        student: per chosen layer, `(N, H)` zip2zip hidden states at the scored positions.
        teacher: per chosen layer, `(N, H)` base-model hidden states at the aligned base positions.
        loss: `"nmse"` (`|s - t|^2 / |t|^2`) or `"cosine"` (`1 - cos(s, t)`).

    Returns:
        `(N,)` distances (0 when the states are equal).
    """
    if len(student) != len(teacher) or not student:
        raise ValueError(f"got {len(student)} student and {len(teacher)} teacher layers; give the same, >= 1")
    total = None
    for s, t in zip(student, teacher):
        s, t = s.float(), t.float()
        if loss == "nmse":
            value = (s - t).pow(2).sum(-1) / t.pow(2).sum(-1).clamp(min=1e-6)
        elif loss == "cosine":
            value = 1 - torch.nn.functional.cosine_similarity(s, t, dim=-1, eps=1e-6)
        else:
            raise ValueError(f"hidden-state distillation loss must be 'nmse' or 'cosine', got {loss!r}")
        total = value if total is None else total + value
    return total / len(student)


class FrozenBaseTeacher:
    """The base model reading the uncompressed rows, frozen: the teacher of every distillation loss.

    With a PEFT adapter the teacher is the same weights with the adapters disabled (no second copy in memory).
    Under full fine-tuning the base weights themselves train, so a frozen copy of the base model is taken when
    the teacher is built (before the first step). Either way it runs in eval mode (no dropout) and without
    gradients; only the hidden states at the scored positions go through the LM head.
    """

    def __init__(self, model: torch.nn.Module, copy_weights: bool) -> None:
        self.copy = None
        if copy_weights:
            import copy

            self.copy = copy.deepcopy(core_model(model).language_model).eval().requires_grad_(False)

    @torch.no_grad()
    def __call__(
        self,
        model: torch.nn.Module,
        base_inputs: dict[str, torch.Tensor],
        rows: torch.Tensor,
        positions: torch.Tensor,
        layers: list[int],
        logits: bool,
    ) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """Teacher logits `(N, V)` (when `logits`) and hidden states `(N, H)` per index of `layers`, at base
        positions `(rows, positions)` of `base_inputs` (`base_input_ids`, `base_attention_mask`)."""
        import contextlib

        if self.copy is not None:
            language_model, context = self.copy, contextlib.nullcontext()
            self.copy.to(rows.device)
        else:
            language_model, context = core_model(model).language_model, model.disable_adapter()
        was_training = language_model.training
        device = rows.device
        with context:
            language_model.eval()
            try:
                out = language_model.base_model(
                    input_ids=base_inputs["base_input_ids"].to(device),
                    attention_mask=base_inputs["base_attention_mask"].to(device),
                    use_cache=False,
                    output_hidden_states=bool(layers),
                    return_dict=True,
                )
                states = [out.hidden_states[i][rows, positions] for i in layers] if layers else []
                head_logits = None
                if logits:
                    head_logits = language_model.get_output_embeddings()(
                        out.last_hidden_state[rows, positions]
                    )
                    cap = getattr(language_model.config, "final_logit_softcapping", None)
                    if cap:
                        head_logits = torch.tanh(head_logits / cap) * cap
            finally:
                language_model.train(was_training)
        return head_logits, states
