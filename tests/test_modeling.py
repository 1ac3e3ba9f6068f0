"""Zip2ZipForCausalLM: identity at M=1, row independence, the exact codebook mask, gradients, save/load,
dtypes, errors. Everything runs on tiny in-process base models (tests/_tiny_models.py)."""

from __future__ import annotations

import json
import textwrap

import pytest
import torch
from _fresh_process import run_without_package
from _tiny_models import ARCHITECTURES, SMALL_ENCODERS, VOCAB, tiny_base_model, tiny_zip2zip
from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaModel

from zip2zip import Zip2ZipConfig, Zip2ZipForCausalLM
from zip2zip.model.lzw_decoder import LZWDecoder

C = 40


def make_model(arch="llama", tied=False, max_subtokens=4, seed=0, **settings):
    """A tiny zip2zip model over the :data:`VOCAB` ids of a random ``arch`` (no tokenizer), perturbed encoders."""
    model, _ = tiny_zip2zip(
        seed=seed,
        arch=arch,
        tokenizer=False,
        tied=tied,
        tie_encoders=settings.pop("tie_encoders", False),
        max_subtokens=max_subtokens,
        max_codebook_size=C,
        disabled_ids=[0, 1, 2],
        **settings,
    )
    return model


def repetitive_ids(n=60, seed=0, vocab=VOCAB):
    """Base ids with plenty of repeats (so LZW builds and reuses hypertokens), no disabled ids."""
    g = torch.Generator().manual_seed(seed)
    motif = torch.randint(3, 12, (5,), generator=g).tolist()
    noise = torch.randint(3, vocab, (n,), generator=g).tolist()
    out = []
    for i in range(n):
        out.append(motif[i % 5] if (i // 7) % 2 == 0 else noise[i])
    return out


def compressed(model, n=60, seed=0):
    return model.codec.encode(repetitive_ids(n, seed))


def pad_batch(rows, side="right", pad=0):
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for b, r in enumerate(rows):
        if side == "right":
            ids[b, : len(r)] = torch.tensor(r)
            mask[b, : len(r)] = 1
        else:
            ids[b, T - len(r) :] = torch.tensor(r)
            mask[b, T - len(r) :] = 1
    return ids, mask


# ----------------------------------------------------------------------------- invariant 1


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("tied", [False, True])
def test_max_subtokens_one_is_the_base_model(arch, tied):
    model = make_model(arch, tied, max_subtokens=1)
    base = tiny_base_model(arch, tied)
    ids = torch.tensor([repetitive_ids(30), repetitive_ids(30, seed=1)])
    assert model.codec.encode(ids[0].tolist()) == ids[0].tolist()
    with torch.no_grad():
        ours = model(input_ids=ids, labels=ids)
        ref = base(input_ids=ids, labels=ids)
    assert ours.logits.shape == (2, 30, VOCAB + C)
    torch.testing.assert_close(ours.logits[..., :VOCAB], ref.logits, rtol=1e-5, atol=1e-5)
    assert torch.isneginf(ours.logits[..., VOCAB:]).all()
    torch.testing.assert_close(ours.loss, ref.loss, rtol=1e-5, atol=1e-5)
    assert ours.lm_loss is ours.loss and ours.reconstruction_loss is None


# ----------------------------------------------------------------------------- invariant 2


@pytest.mark.parametrize("position_mode", ["compressed", "base"])
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_rows_are_independent_and_padding_does_not_matter(arch, position_mode):
    model = make_model(arch, position_mode=position_mode)
    row = compressed(model, 60, seed=0)
    other_a = compressed(model, 45, seed=1)
    other_b = compressed(model, 80, seed=2)
    with torch.no_grad():
        alone = model(input_ids=torch.tensor([row])).logits[0]
        for side in ("right", "left"):
            for other in (other_a, other_b):
                ids, mask = pad_batch([row, other], side)
                logits = model(input_ids=ids, attention_mask=mask).logits[0]
                at = mask[0].bool()
                torch.testing.assert_close(logits[at], alone, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("position_mode", ["compressed", "base"])
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_training_on_right_padded_rows_runs_causal_attention_with_the_same_loss_and_gradients(
    arch, position_mode, monkeypatch
):
    """In training (the trainer's call: no cache), a right-padded batch with compressed positions reaches the
    decoder without mask or position ids, so attention runs plainly causal; real positions, the loss and every
    gradient stay what the masked forward gives. Base-stream positions, left padding and the caller's position
    ids keep the mask."""
    model = make_model(arch, position_mode=position_mode)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    seen = []
    model.get_decoder().register_forward_pre_hook(
        lambda module, args, kwargs: seen.append((kwargs.get("attention_mask"), kwargs.get("position_ids"))),
        with_kwargs=True,
    )
    sdpa_calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def recording_sdpa(*args, **kwargs):
        if "is_causal" in kwargs:  # the decoder's attention (the hyper-encoders attend both ways)
            sdpa_calls.append((kwargs.get("attn_mask") is None, bool(kwargs["is_causal"])))
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", recording_sdpa)
    rows = [compressed(model, 60, seed=0), compressed(model, 40, seed=1)]

    def run(side, training, **kwargs):
        ids, mask = pad_batch(rows, side)
        model.train(training)
        model.zero_grad(set_to_none=True)
        sdpa_calls.clear()
        labels = ids.masked_fill(mask == 0, -100)
        out = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False, **kwargs)
        out.loss.backward()
        grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
        return out.logits.detach()[mask.bool()], out.loss.detach(), grads, list(sdpa_calls)

    masked = run("right", training=False)
    causal = run("right", training=True)
    dropped = position_mode == "compressed"
    assert seen[0][0] is not None
    assert (seen[1][0] is None and seen[1][1] is None) == dropped
    if dropped and arch != "gemma3":  # gemma3's sliding-window layers need a mask of their own
        assert causal[3] and all(no_mask and is_causal for no_mask, is_causal in causal[3]), causal[3]
    torch.testing.assert_close(causal[0], masked[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(causal[1], masked[1], rtol=1e-5, atol=1e-5)
    assert causal[2].keys() == masked[2].keys() and len(masked[2]) > 10
    for name, grad in masked[2].items():
        torch.testing.assert_close(causal[2][name], grad, rtol=1e-4, atol=1e-5, msg=name)
    # Left padding needs the mask: training keeps it, and real positions are again those of eval.
    left_eval, left_train = run("left", training=False), run("left", training=True)
    assert seen[3][0] is not None
    torch.testing.assert_close(left_train[0], left_eval[0], rtol=1e-4, atol=1e-4)
    # So do position ids of the caller's (packed documents, say).
    _, mask = pad_batch(rows, "right")
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    run("right", training=True, position_ids=positions)
    assert seen[4][0] is not None and seen[4][1] is positions


# ----------------------------------------------------------------------------- invariant 3


def expected_accepts(model, codes):
    """Per position t, the set of hypertoken slots a fresh decoder accepts after codes[: t + 1]."""
    decoder = LZWDecoder(model.codec)
    out = []
    for code in codes:
        decoder.feed(code)
        out.append({k for k in range(C) if decoder.can_accept(VOCAB + k)})
    return out


@pytest.mark.parametrize("arch", ["llama", "gemma3"])
def test_minus_inf_exactly_where_the_decoder_cannot_accept(arch):
    model = make_model(arch)
    rows = [compressed(model, 70, seed=s) for s in range(3)]
    ids, mask = pad_batch(rows, "left")
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100))
    assert torch.isfinite(out.loss)
    hyper = out.logits[..., VOCAB:]
    for b, codes in enumerate(rows):
        offset = ids.shape[1] - len(codes)
        for t, accepted in enumerate(expected_accepts(model, codes)):
            finite = set(torch.isfinite(hyper[b, offset + t]).nonzero().flatten().tolist())
            assert finite == accepted, (b, t)
        assert torch.isfinite(out.logits[b, offset:, :VOCAB]).all()
        # every target of the canonical stream is finite
        targets = torch.tensor(codes[1:])
        picked = out.logits[b, offset : offset + len(codes) - 1].gather(1, targets[:, None])
        assert torch.isfinite(picked).all()


def test_kwkwk_slot_scores_the_candidate_entry():
    model = make_model("llama")
    V = VOCAB
    # "a b a b a" style stream: the encoder uses a hypertoken in the step that creates it.
    base_ids = [5, 6, 5, 6, 5, 6, 5, 7, 7, 7, 7, 7, 7, 8, 9]
    codes = model.codec.encode(base_ids)
    state = model.prepare_codebook(torch.tensor([codes]))
    cand_positions = (state["candidates"][0, :, 0] >= 0).nonzero().flatten().tolist()
    assert cand_positions, "stream should contain KwKwK candidates"
    with torch.no_grad():
        out = model(input_ids=torch.tensor([codes]), output_hidden_states=True)
        hidden = out.hidden_states[-1][0]
        for t in cand_positions:
            limit = int(state["accept_limits"][0, t])
            entry = state["candidates"][0, t : t + 1]
            expected = hidden[t] @ model.unembed_hypertokens(entry)[0]
            torch.testing.assert_close(out.logits[0, t, V + limit - 1], expected, rtol=1e-4, atol=1e-4)
    # A code used in its creating step is a finite-scored target.
    kwkwk = [
        t
        for t in range(1, len(codes))
        if codes[t] >= V and codes[t] - V == int(state["accept_limits"][0, t - 1]) - 1
    ]
    assert kwkwk and all(torch.isfinite(out.logits[0, t - 1, codes[t]]) for t in kwkwk)


def test_finite_loss_on_random_streams():
    model = make_model("qwen2", tied=True)
    g = torch.Generator().manual_seed(3)
    for _ in range(5):
        # A tiny alphabet: long merges and a full codebook.
        base_ids = torch.randint(3, 12, (120,), generator=g).tolist()
        codes = torch.tensor([model.codec.encode(base_ids)])
        with torch.no_grad():
            assert torch.isfinite(model(input_ids=codes, labels=codes).loss)


def test_precomputed_state_matches_and_cached_step_matches_full_forward():
    model = make_model("llama", position_mode="base")
    codes = compressed(model, 60)
    ids = torch.tensor([codes])
    with torch.no_grad():
        full = model(input_ids=ids).logits
        state = model.prepare_codebook(ids)
        vectors = {
            "codebook_input_embeds": model.embed_codebook(state["codebook"]),
            "codebook_output_embeds": model.unembed_codebook(state["codebook"]),
        }
        again = model(input_ids=ids, **state, **vectors).logits
        torch.testing.assert_close(again, full, rtol=1e-5, atol=1e-5)
        # prefix with a cache, then the last code alone with its slice of the state (what generation does)
        n = len(codes) - 1
        prefix = model(input_ids=ids[:, :n], use_cache=True)
        positions = model._position_ids(ids, None, state["codebook"])
        step = model(
            input_ids=ids[:, n:],
            cache=prefix.cache,
            attention_mask=torch.ones_like(ids),
            position_ids=positions[:, n:],
            codebook=state["codebook"],
            accept_limits=state["accept_limits"][:, n:],
            candidates=state["candidates"][:, n:],
        ).logits
        torch.testing.assert_close(step[:, -1], full[:, -1], rtol=1e-4, atol=1e-4)
        last = model(input_ids=ids, logits_to_keep=1).logits
        torch.testing.assert_close(last[:, -1], full[:, -1], rtol=1e-5, atol=1e-5)
        as_tuple = model(input_ids=ids, labels=ids, return_dict=False)
        assert isinstance(as_tuple, tuple) and as_tuple[0].dim() == 0


def test_base_positions_follow_last_constituent():
    model = make_model("llama", position_mode="base")
    base_ids = repetitive_ids(50)
    trace = model.codec.trace(model.codec.encode(base_ids))
    ids, mask = pad_batch([trace.codes], "left")
    state = model.prepare_codebook(ids, mask)
    positions = model._position_ids(ids, mask, state["codebook"])
    expected = torch.tensor(trace.spans).cumsum(0) - 1
    assert positions[0, -len(trace.codes) :].tolist() == expected.tolist()
    assert positions[0, -1] == len(base_ids) - 1


# ----------------------------------------------------------------------------- invariant 4


def test_gradients_reach_encoders_and_lora_not_frozen_base():
    import peft

    model = make_model("llama", reconstruction_loss_weight=0.1).train()
    for p in model.language_model.parameters():
        p.requires_grad_(False)
    ids = torch.tensor([compressed(model, 60)])
    out = model(input_ids=ids, labels=ids)
    assert out.reconstruction_loss is not None and torch.isfinite(out.reconstruction_loss)
    torch.testing.assert_close(out.loss, out.lm_loss + 0.1 * out.reconstruction_loss)
    out.loss.backward()
    for name, module in (
        ("input", model.input_encoder),
        ("output", model.output_encoder),
        ("rec", model.reconstruction_head),
    ):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads), name
        assert any(g.abs().sum() > 0 for g in grads), name
    assert all(p.grad is None for p in model.language_model.parameters())

    lora = peft.get_peft_model(
        make_model("llama"),
        peft.LoraConfig(
            r=4, target_modules=["q_proj", "v_proj"], modules_to_save=["input_encoder", "output_encoder"]
        ),
    )
    lora.train()
    out = lora(input_ids=ids, labels=ids)
    out.loss.backward()
    named = dict(lora.named_parameters())
    lora_grads = [p.grad for n, p in named.items() if "lora_" in n]
    assert lora_grads and all(g is not None for g in lora_grads)
    assert all(
        p.grad is not None for n, p in named.items() if "modules_to_save" in n and "input_encoder" in n
    )
    assert all(p.grad is None for n, p in named.items() if "embed_tokens" in n or "mlp" in n)


# ----------------------------------------------------------------------------- invariant 5


REMOTE_LOAD = textwrap.dedent(
    """
    import sys, torch
    from transformers import AutoModelForCausalLM
    folder, ids_path, out_path, threads = sys.argv[1:]
    torch.set_num_threads(int(threads))  # same reduction order as the parent, so logits match bit for bit
    model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).eval()
    assert "zip2zip" not in sys.modules, "the package must not be imported by remote loading"
    ids = torch.load(ids_path)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    torch.save({"logits": logits, "module": type(model).__module__, "cls": type(model).__name__}, out_path)
    """
)


@pytest.mark.parametrize("arch,tied", [("llama", True), ("gpt2", False)])
def test_save_load_roundtrip_and_remote_code(arch, tied, tmp_path):
    model = make_model(arch, tied, position_mode="base")
    ids = torch.tensor([compressed(model, 50)])
    with torch.no_grad():
        reference = model(input_ids=ids).logits
    folder = tmp_path / "repo"
    model.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["auto_map"] == {
        "AutoConfig": "configuration_zip2zip.Zip2ZipConfig",
        "AutoModel": "modeling_zip2zip.Zip2ZipForCausalLM",
        "AutoModelForCausalLM": "modeling_zip2zip.Zip2ZipForCausalLM",
    }
    for name in ("configuration_zip2zip.py", "modeling_zip2zip.py", "lzw.py", "model.safetensors"):
        assert (folder / name).exists(), name

    loaded = Zip2ZipForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids).logits, reference, rtol=0, atol=0)
    auto = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert type(auto) is Zip2ZipForCausalLM

    torch.save(ids, tmp_path / "ids.pt")
    run_without_package(
        REMOTE_LOAD,
        str(folder),
        str(tmp_path / "ids.pt"),
        str(tmp_path / "out.pt"),
        str(torch.get_num_threads()),
        workdir=tmp_path,
    )
    remote = torch.load(tmp_path / "out.pt")
    assert remote["module"].startswith("transformers_modules.") and remote["cls"] == "Zip2ZipForCausalLM"
    torch.testing.assert_close(remote["logits"], reference, rtol=0, atol=0)


def test_auto_classes_resolve_locally():
    config = Zip2ZipConfig(text_config=tiny_base_model().config, max_codebook_size=8)
    assert isinstance(AutoConfig.for_model("zip2zip"), Zip2ZipConfig)
    assert type(AutoModelForCausalLM.from_config(config)) is Zip2ZipForCausalLM


def test_from_base_path(tmp_path):
    base = tiny_base_model("qwen2")
    base.save_pretrained(tmp_path / "base")
    with pytest.warns(UserWarning, match="bos/eos/pad"):
        Zip2ZipForCausalLM.from_base(base, max_codebook_size=8)
    model = Zip2ZipForCausalLM.from_base(str(tmp_path / "base"), disabled_ids=[0, 2], max_codebook_size=8)
    assert model.config.disabled_ids == [0, 2]
    for (name, p), q in zip(model.language_model.state_dict().items(), base.state_dict().values()):
        assert torch.equal(p, q), name


# ----------------------------------------------------------------------------- invariant 6


def test_bfloat16_and_compile_friendly_encoder_path(monkeypatch):
    model = make_model("llama")
    ids = torch.tensor([compressed(model, 60)])
    with torch.no_grad():
        ref = model(input_ids=ids, labels=ids)
        state = model.prepare_codebook(ids)
        entries = state["codebook"][0]
        eager = model.unembed_hypertokens(entries)
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
        padded = model.unembed_hypertokens(entries)
        padded_logits = model(input_ids=ids).logits
        monkeypatch.undo()
        torch.testing.assert_close(padded, eager, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(padded_logits, ref.logits, rtol=1e-5, atol=1e-5)
        half = model.to(torch.bfloat16)
        out = half(input_ids=ids, labels=ids)
    assert out.logits.dtype == torch.bfloat16
    assert torch.equal(torch.isneginf(out.logits), torch.isneginf(ref.logits))
    finite = torch.isfinite(ref.logits)
    assert (out.logits.float()[finite] - ref.logits[finite]).abs().max() < 0.1
    assert abs(float(out.loss) - float(ref.loss)) < 0.05


# ----------------------------------------------------------------------------- bad input


def test_errors_name_the_problem():
    model = make_model("llama")
    codes = compressed(model, 40)
    with pytest.raises(ValueError, match=r"input id 136 at row 0, position 1 .*max_codebook_size"):
        model(input_ids=torch.tensor([[5, VOCAB + C, 6]]))
    with pytest.raises(ValueError, match=r"row 0 .*not in the codebook"):
        model(input_ids=torch.tensor([[5, VOCAB + 3, 6]]))
    state = model.prepare_codebook(torch.tensor([codes]))
    with pytest.raises(ValueError, match="max_subtokens=4"):
        model(input_ids=torch.tensor([codes]), codebook=state["codebook"][..., :3])
    wrong = state["codebook"].clone()
    wrong[0, 0, 0] = (wrong[0, 0, 0] + 1) % VOCAB
    with pytest.raises(ValueError, match="disagree on base_vocab_size, max_codebook_size, max_subtokens or"):
        model(input_ids=torch.tensor([codes]), codebook=wrong)
    with pytest.raises(ValueError, match=r"max_codebook_size=2147483647 .* lower max_codebook_size"):
        Zip2ZipConfig(text_config=LlamaConfig(vocab_size=100), max_codebook_size=2**31 - 1)
    with pytest.raises(ValueError, match="position_mode='relative'"):
        Zip2ZipConfig(text_config=LlamaConfig(vocab_size=100), position_mode="relative")
    with pytest.raises(ValueError, match="encoder_hidden_size=30 is not divisible by encoder_num_heads=4"):
        Zip2ZipConfig(text_config=LlamaConfig(vocab_size=100), encoder_hidden_size=30, encoder_num_heads=4)
    with pytest.raises(ValueError, match="no output embedding"):
        Zip2ZipForCausalLM.from_base(LlamaModel(tiny_base_model().config), disabled_ids=[0])
    with pytest.raises(TypeError, match="unknown zip2zip settings \\['max_codebok_size'\\]"):
        Zip2ZipForCausalLM.from_base(tiny_base_model(), disabled_ids=[0], max_codebok_size=8)
    with pytest.raises(ValueError, match="non-empty cache"):
        prefix = model(input_ids=torch.tensor([codes[:5]]), use_cache=True)
        model(input_ids=torch.tensor([codes[5:6]]), cache=prefix.cache)


def test_tokenizer_batches_feed_the_model_directly():
    from _tiny_tokenizers import tiny_bpe_tokenizer

    from zip2zip.model.tokenization_zip2zip import Zip2ZipTokenizer

    base_tokenizer = tiny_bpe_tokenizer()
    base = tiny_base_model("llama", vocab_size=len(base_tokenizer))
    model = Zip2ZipForCausalLM.from_base(
        base, tokenizer=base_tokenizer, max_codebook_size=64, **SMALL_ENCODERS
    ).eval()
    assert set(base_tokenizer.all_special_ids) <= set(model.config.disabled_ids)
    tokenizer = Zip2ZipTokenizer.from_base(base_tokenizer, model.config, padding_side="left")
    texts = [
        "the cat sat on the mat. the cat sat on the hat. the cat sat.",
        "def add(a, b):\n    return a + b\n" * 3,
    ]
    batch = tokenizer(texts, padding=True, return_tensors="pt", return_codebook=True)
    assert bool((batch["input_ids"] >= model.config.base_vocab_size).any())
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    with torch.no_grad():
        out = model(**batch, labels=labels)
        plain = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels)
    assert torch.isfinite(out.loss)
    torch.testing.assert_close(out.logits, plain.logits, rtol=0, atol=0)

    other = Zip2ZipTokenizer.from_base(base_tokenizer, model.config, max_subtokens=3)
    mismatched = other(texts[:1], return_tensors="pt", return_codebook=True)
    with pytest.raises(ValueError, match="max_subtokens=4"):
        model(**mismatched)


@pytest.mark.parametrize(
    "settings",
    [
        {"encoder_init": "residual", "encoder_pooling": "mean"},
        {"encoder_init": "mean", "encoder_pooling": "first", "tie_encoders": True},
        {"encoder_init": "random", "encoder_pooling": "last", "encoder_learned_positions": False},
        {"encoder_hidden_size": None, "encoder_num_heads": None, "encoder_intermediate_size": None},
    ],
)
def test_encoder_variants(settings, monkeypatch):
    base = tiny_base_model("llama")
    model = Zip2ZipForCausalLM.from_base(
        base, disabled_ids=[0], max_codebook_size=C, **{**SMALL_ENCODERS, **settings}
    )
    entries = torch.tensor([[5, 6, -1, -1], [7, 8, 9, -1], [5, 6, 7, 8]])
    embed = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    with torch.no_grad():
        vectors = model.embed_hypertokens(entries)
        if model.config.encoder_init == "residual":  # untrained: exactly the first constituent
            torch.testing.assert_close(vectors, embed[entries[:, 0]])
        elif model.config.encoder_init == "mean":
            expected = torch.stack([embed[e[e >= 0]].mean(0) for e in entries])
            torch.testing.assert_close(vectors, expected)
            torch.testing.assert_close(
                model.unembed_hypertokens(entries), torch.stack([head[e[e >= 0]].mean(0) for e in entries])
            )
        assert (model.output_encoder is None) == settings.get("tie_encoders", False)
        monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
        torch.testing.assert_close(model.embed_hypertokens(entries), vectors, rtol=1e-5, atol=1e-5)
        monkeypatch.undo()
        ids = torch.tensor([compressed(model, 40)])
        assert torch.isfinite(model(input_ids=ids, labels=ids).loss)


def test_gradient_checkpointing_gives_the_gradients_of_a_plain_step():
    model = make_model("qwen2", reconstruction_loss_weight=0.1).train()
    ids = torch.tensor([compressed(model, 40)])

    def gradients():
        model.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain_loss, plain = gradients()
    model.gradient_checkpointing_enable()
    assert model.language_model.model.gradient_checkpointing
    loss, checkpointed = gradients()
    assert torch.equal(loss, plain_loss)
    assert set(checkpointed) == set(plain)
    assert any(n.startswith("input_encoder.") for n in plain) and any(
        n.startswith("language_model.") for n in plain
    )
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-6, rtol=1e-5, msg=name)


# ----------------------------------------------------------------------------- the generation seam


@pytest.mark.parametrize("tied", [False, True])
def test_encode_entries_equals_the_grouped_encoders_and_the_cache_encodes_once(tied, monkeypatch):
    model = make_model("llama", tied=tied, tie_encoders=tied)
    few = torch.tensor([[5, 6, -1, -1], [7, 8, 9, -1], [5, 6, 7, 8]])
    many = torch.tensor([[3 + i, 4 + i, -1, -1] for i in range(12)])
    with torch.no_grad():
        for entries in (few, many):
            torch.testing.assert_close(model.encode_entries(entries), model.embed_hypertokens(entries))
            torch.testing.assert_close(
                model.encode_entries(entries, output=True), model.unembed_hypertokens(entries)
            )
        calls = []
        encode = model.encode_entries
        monkeypatch.setattr(
            model,
            "encode_entries",
            lambda e, output=False: calls.append((len(e), output)) or encode(e, output=output),
        )
        cache = model.new_entry_cache()
        first = cache.vectors([(5, 6), (7, 8, 9), (5, 6)], output=True)
        again = cache.vectors([(7, 8, 9), (5, 6)], output=True)
        inputs = cache.vectors([(5, 6)], output=False)
    assert calls[0] == (2, True)  # two distinct entries, one pass
    torch.testing.assert_close(first[[1, 0]], again, rtol=0, atol=0)
    torch.testing.assert_close(first[0], model.unembed_hypertokens(few[:1])[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(inputs[0], model.embed_hypertokens(few[:1])[0], rtol=1e-5, atol=1e-5)
    # Tied encoders over tied embeddings: an entry's input vector is its output vector, no second pass.
    assert calls == ([(2, True)] if tied else [(2, True), (1, False)])


def test_codebook_state_is_what_prepare_codebook_returns():
    from zip2zip.model.modeling_zip2zip import codebook_state

    model = make_model("llama")
    rows = [compressed(model, 60, seed=0), compressed(model, 30, seed=1)]
    codec = model.codec
    traces = [codec.trace(row) for row in rows]
    for side in ("right", "left"):
        ids, mask = pad_batch(rows, side)
        T = ids.shape[1]
        columns = [[t for t in range(T) if mask[b, t]] for b in range(2)]
        state = codebook_state(codec, traces, T, columns if side == "left" else None)
        expected = model.prepare_codebook(ids, mask)
        assert state.keys() == expected.keys()
        for name in state:
            assert torch.equal(state[name], expected[name]), (side, name)
    with pytest.raises(ValueError, match="row 1: its trace holds 20 codes but 3 columns"):
        codebook_state(
            codec, [traces[0], codec.trace(rows[1][:20])], 80, [list(range(len(rows[0]))), [0, 1, 2]]
        )
