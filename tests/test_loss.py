"""The chunked compressed cross-entropy equals transformers' causal-LM loss, in value and gradient."""

from __future__ import annotations

import pytest
import torch
from transformers.loss.loss_utils import ForCausalLMLoss

from zip2zip.model.loss_zip2zip import chunked_causal_lm_loss


def logits_and_labels(dtype, seed=0, batch=3, length=11, vocab=37):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(batch, length, vocab, generator=g) * 3).to(dtype)
    logits[..., 30:] = float("-inf")  # slots the decoder cannot accept
    logits[0, :, 28] = float("-inf")
    labels = torch.randint(0, 28, (batch, length), generator=g)
    labels[0, 1] = 29  # a hypertoken target (position 0 predicts label 1)
    labels[1, 7:] = -100  # right padding
    labels[2, :3] = -100  # a masked prompt
    return logits, labels


@pytest.mark.parametrize("num_items", [None, 17, "17 as a tensor"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("chunk_rows", [1, 4, 1000])
def test_value_and_gradient_equal_transformers_loss(dtype, num_items, chunk_rows):
    logits, labels = logits_and_labels(dtype)
    ours_in = logits.clone().requires_grad_(True)
    ref_in = logits.clone().requires_grad_(True)
    count = torch.tensor(17) if num_items == "17 as a tensor" else num_items
    ours = chunked_causal_lm_loss(ours_in, labels, count, chunk_rows=chunk_rows)
    ref = ForCausalLMLoss(ref_in, labels, vocab_size=logits.shape[-1], num_items_in_batch=count)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    (ours * 2.5).backward()
    (ref * 2.5).backward()
    assert ours_in.grad.dtype == dtype
    tolerance = {"rtol": 1e-6, "atol": 1e-7} if dtype == torch.float32 else {"rtol": 1e-2, "atol": 1e-3}
    torch.testing.assert_close(ours_in.grad, ref_in.grad, **tolerance)
    # Padded and masked positions, and slots that cannot be accepted, get no gradient.
    assert (
        not ours_in.grad[1, 6:].any() and not ours_in.grad[2, :2].any() and not ours_in.grad[..., 30:].any()
    )


def test_no_target_gives_nan_like_cross_entropy_and_a_wrong_label_is_named():
    logits, labels = logits_and_labels(torch.float32)
    assert torch.isnan(chunked_causal_lm_loss(logits, torch.full_like(labels, -100)))
    labels[1, 3] = 99
    with pytest.raises(ValueError, match="label 99 is outside the 37 logits"):
        chunked_causal_lm_loss(logits, labels)
    with pytest.raises(ValueError, match="must be"):
        chunked_causal_lm_loss(logits[0], labels[0])
    with pytest.raises(ValueError, match="chunk_rows must be a positive int, got 0"):
        chunked_causal_lm_loss(logits, torch.zeros_like(labels), chunk_rows=0)


def test_the_model_uses_it_unless_given_its_own_loss_function(monkeypatch):
    from test_modeling import compressed, make_model

    import zip2zip.model.modeling_zip2zip as modeling

    calls = []

    def counted(*args, **kwargs):
        calls.append(1)
        return chunked_causal_lm_loss(*args, **kwargs)

    monkeypatch.setattr(modeling, "chunked_causal_lm_loss", counted)
    model = make_model("llama")
    ids = torch.tensor([compressed(model, 60)])
    out = model(input_ids=ids, labels=ids)
    assert calls == [1]
    reference = ForCausalLMLoss(out.logits, ids, vocab_size=out.logits.shape[-1])
    torch.testing.assert_close(out.loss, reference, rtol=1e-6, atol=1e-6)
    # A loss function of the user's (here: transformers' own) is called with the model's logits and labels.
    model.loss_function = lambda logits, labels, vocab_size, **kwargs: (
        ForCausalLMLoss(logits, labels, vocab_size=vocab_size, **kwargs) * 2
    )
    torch.testing.assert_close(model(input_ids=ids, labels=ids).loss, 2 * reference, rtol=1e-6, atol=1e-6)
    assert calls == [1], "the model's own loss is not computed beside the user's"
