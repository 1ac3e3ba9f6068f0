"""The compressed cross-entropy, computed a few rows at a time so that no float32 copy of the logits exists.

A zip2zip model's logits are `V + C` wide (about 51,000 for SmolLM2), and transformers' causal-LM loss casts
them all to float32, takes a full log-softmax and, in backward, fills a zero tensor of that size before the
gradient reaches the logits. Under bf16 autocast that is over a gigabyte of fresh memory per step for a
2 x 1024 batch, as slow on a CPU as the matrix products of the whole model. :func:`chunked_causal_lm_loss`
gives the same value and gradient (float32 arithmetic throughout): forward keeps only one log-sum-exp per
scored position, and backward recomputes the softmax a chunk of rows at a time, writing the gradient in the
logits' own dtype.

This file is copied into every exported Hub repo (``trust_remote_code``): it imports only torch and the
standard library.
"""

from __future__ import annotations

import torch

__all__ = ["chunked_causal_lm_loss"]

# Rows of logits per chunk. On a CPU, 8 rows of 51,200 float32 logits (1.6 MB) stay in a core's L2 cache; an
# accelerator wants few, large kernels instead (1024 rows: 210 MB of float32 at a time).
_CHUNK_ROWS = {"cpu": 8}
_CHUNK_ROWS_ACCELERATOR = 1024


class _ChunkedCrossEntropy(torch.autograd.Function):
    """Sum over `rows` of `logsumexp(logits[row]) - logits[row, target]`, in float32, chunk by chunk."""

    @staticmethod
    def forward(
        ctx, logits: torch.Tensor, rows: torch.Tensor, targets: torch.Tensor, chunk: int
    ) -> torch.Tensor:
        total = logits.new_zeros((), dtype=torch.float32)
        lse = torch.empty(rows.shape[0], dtype=torch.float32, device=logits.device)
        for start in range(0, rows.shape[0], chunk):
            part = slice(start, start + chunk)
            scores = logits[rows[part]].float()
            lse[part] = torch.logsumexp(scores, dim=-1)
            picked = scores.gather(1, targets[part, None]).squeeze(1)
            total += (lse[part] - picked).sum()
        ctx.save_for_backward(logits, rows, targets, lse)
        ctx.chunk = chunk
        return total

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_total: torch.Tensor):
        logits, rows, targets, lse = ctx.saved_tensors
        grad = torch.zeros_like(logits)
        scale = grad_total.float()
        for start in range(0, rows.shape[0], ctx.chunk):
            part = slice(start, start + ctx.chunk)
            probs = (logits[rows[part]].float() - lse[part, None]).exp_()
            probs[torch.arange(probs.shape[0], device=probs.device), targets[part]] -= 1.0
            grad[rows[part]] = (probs * scale).to(grad.dtype)
        return grad, None, None, None


def chunked_causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """transformers' `ForCausalLMLoss` (shifted cross-entropy, float32) without materializing float32 logits.

    Args:
        logits: `(batch, length, vocab)` in any float dtype; `-inf` entries (slots the decoder cannot accept)
            are allowed and get zero gradient.
        labels: `(batch, length)` targets, unshifted (position `t` is scored against `labels[t + 1]`);
            `ignore_index` marks positions that are not targets.
        num_items_in_batch: divide the summed loss by this (exact gradient accumulation); `None` averages
            over the scored positions.
        chunk_rows: positions whose logits are processed at once (default: 8 on a CPU, 1024 elsewhere).

    Returns:
        The scalar loss, float32. Its gradient reaches `logits` in their dtype.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(
            f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} must be (batch, length, vocab) and "
            "(batch, length)"
        )
    batch, length, vocab = logits.shape
    shifted = torch.full_like(labels, ignore_index)
    shifted[:, :-1] = labels[:, 1:]
    shifted = shifted.reshape(-1).to(logits.device)
    rows = (shifted != ignore_index).nonzero().squeeze(1)
    targets = shifted[rows]
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= vocab):
        bad = int(targets[(targets < 0) | (targets >= vocab)][0])
        raise ValueError(
            f"label {bad} is outside the {vocab} logits (and is not ignore_index={ignore_index})"
        )
    if chunk_rows is None:
        chunk_rows = _CHUNK_ROWS.get(logits.device.type, _CHUNK_ROWS_ACCELERATOR)
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive int, got {chunk_rows!r}")
    total = _ChunkedCrossEntropy.apply(logits.reshape(batch * length, vocab), rows, targets, chunk_rows)
    if num_items_in_batch is None:
        return total / rows.numel() if rows.numel() else total * float("nan")
    if torch.is_tensor(num_items_in_batch):
        num_items_in_batch = num_items_in_batch.to(total.device)
    return total / num_items_in_batch
