"""Low-rank deltas: a fully fine-tuned model stored as its base plus thin factors, and rebuilt from them."""

from __future__ import annotations

import copy

import pytest
import torch
from _tiny_models import tiny_base_model

from zip2zip import Zip2ZipForCausalLM
from zip2zip.bundled.low_rank import DOWN, UP, apply_low_rank_delta, extract_low_rank_delta

SETTINGS = {"max_codebook_size": 32, "max_subtokens": 3, "encoder_num_layers": 1}


def _pair(seed: int = 0, tied: bool = False):
    torch.manual_seed(seed)
    base = tiny_base_model(vocab_size=97, tied=tied)
    untrained = Zip2ZipForCausalLM.from_base(base, disabled_ids=[0], **SETTINGS).eval()
    return untrained, copy.deepcopy(untrained)


def _params(model):
    return dict(model.named_parameters())


def test_a_change_within_the_budget_is_rebuilt_exactly_on_a_fresh_model():
    untrained, trained = _pair()
    names = [n for n, p in _params(trained).items() if n.startswith("language_model.") and p.dim() == 2]
    torch.manual_seed(1)
    with torch.no_grad():
        for name in names[:3]:  # rank-2 changes of three matrices
            p = _params(trained)[name]
            p += torch.randn(p.shape[0], 2) @ torch.randn(2, p.shape[1]) * 0.05
        norm = next(
            p for n, p in _params(trained).items() if n.startswith("language_model.") and p.dim() == 1
        )
        norm += 0.1
        for n, p in _params(trained).items():
            if not n.startswith("language_model."):
                p += 0.01  # the hyper-encoders train too
    delta = extract_low_rank_delta(trained, untrained, budget=10**7, dtype=torch.float32)
    assert set(delta.ranks) == set(names[:3]) and set(delta.ranks.values()) == {2}
    assert delta.kept_energy == pytest.approx(1.0)
    # a fresh untrained model (other random hyper-encoders) becomes the trained one
    fresh, _ = _pair(seed=5)
    encoder = next(n for n in _params(fresh) if not n.startswith("language_model."))
    assert not torch.equal(_params(fresh)[encoder], _params(trained)[encoder])
    apply_low_rank_delta(fresh, delta.tensors)
    ids = torch.randint(1, 97, (2, 12)).repeat(1, 3)  # the codebook grows from them: hypertoken logits too
    with torch.no_grad():
        torch.testing.assert_close(
            fresh(input_ids=ids).logits, trained(input_ids=ids).logits, atol=1e-4, rtol=1e-4
        )


def test_the_budget_goes_to_the_directions_that_remove_the_most_error():
    untrained, trained = _pair()
    names = [n for n, p in _params(trained).items() if n.startswith("language_model.") and p.dim() == 2]
    big, small = names[1], names[2]
    with torch.no_grad():
        for name, scale in ((big, 1.0), (small, 0.01)):
            p = _params(trained)[name]
            p += torch.randn(p.shape[0], 3) @ torch.randn(3, p.shape[1]) * scale
    whole = sum(p.numel() for n, p in _params(trained).items() if not n.startswith("language_model."))
    one_direction = sum(_params(trained)[big].shape)
    delta = extract_low_rank_delta(trained, untrained, budget=whole + 3 * one_direction)
    assert delta.ranks == {big: 3}
    assert 0.99 < delta.kept_energy < 1.0
    assert delta.stored_numbers <= whole + 3 * one_direction
    assert delta.tensors[big + UP].dtype == torch.float16 and delta.tensors[big + DOWN].shape[0] == 3


def test_tied_embeddings_are_stored_once():
    untrained, trained = _pair(tied=True)
    embedding = trained.get_input_embeddings().weight
    assert embedding is trained.get_output_embeddings().weight
    with torch.no_grad():
        embedding += torch.randn(embedding.shape[0], 1) @ torch.randn(1, embedding.shape[1])
    delta = extract_low_rank_delta(trained, untrained, budget=10**7, dtype=torch.float32)
    tied = [n for n in delta.ranks if "embed" in n or "lm_head" in n]
    assert len(tied) == 1 and delta.ranks[tied[0]] == 1
    fresh, _ = _pair(tied=True)
    apply_low_rank_delta(fresh, delta.tensors)
    torch.testing.assert_close(fresh.get_output_embeddings().weight, embedding, atol=1e-5, rtol=1e-5)


def test_a_budget_below_the_whole_tensors_is_refused():
    untrained, trained = _pair()
    with pytest.raises(ValueError, match="raise the budget"):
        extract_low_rank_delta(trained, untrained, budget=10)


def test_a_delta_for_another_architecture_is_refused():
    untrained, _ = _pair()
    with pytest.raises(ValueError, match="does not fit this model"):
        apply_low_rank_delta(untrained, {"language_model.nothing.weight" + UP: torch.zeros(2, 1)})


def test_a_delta_applied_in_part_interpolates_the_base_weights_only():
    untrained, trained = _pair()
    torch.manual_seed(2)
    with torch.no_grad():
        for param in trained.parameters():
            param += 0.01 * torch.randn_like(param)  # every tensor changes: matrices, norms, hyper-encoders
    delta = extract_low_rank_delta(trained, untrained, budget=10**8, dtype=torch.float32)
    fresh, _ = _pair()
    apply_low_rank_delta(fresh, delta.tensors, scale=0.25)
    before, after = _params(untrained), _params(trained)
    for name, param in _params(fresh).items():
        if name.startswith("language_model."):
            expected = before[name] + 0.25 * (after[name] - before[name])
        else:
            expected = after[name]  # no base to step back to
        torch.testing.assert_close(param, expected, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="in part"):
        apply_low_rank_delta(fresh, delta.tensors, scale=0.0)
