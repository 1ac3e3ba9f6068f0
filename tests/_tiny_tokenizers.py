"""Small base tokenizers built in-process (no downloads), for tests that need a real Hugging Face tokenizer.

- :func:`tiny_bpe_tokenizer`: a byte-level BPE (GPT-2 / SmolLM2 style) trained in milliseconds on a few
  sentences, with ChatML special tokens and a ChatML chat template. Byte-level means every string, emoji and
  CJK included, round-trips.
- :func:`tiny_wordlevel_tokenizer`: a whitespace WordLevel vocabulary whose post-processor wraps every text
  in ``[BOS] ... [EOS]`` (BERT / Llama style special tokens), with an ``[UNK]`` for unknown words. It tests
  the paths where the base tokenizer adds special tokens itself.

The real SmolLM2 tokenizer comes from the ``smollm2_tokenizer`` fixture in conftest.py.

Both builders are cached: tests may mutate what they get, so they return a fresh copy each call.
"""

from __future__ import annotations

import copy
import functools

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import TokenizersBackend

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TRAINING_TEXT = [
    "the cat sat on the mat. the cat sat on the hat. the dog sat on the log.",
    "def add(a, b):\n    return a + b\n\ndef sub(a, b):\n    return a - b\n",
    "In the beginning the universe was created. This has made a lot of people very angry.",
    "for i in range(10):\n    print(i, i * i)\n",
    "The quick brown fox jumps over the lazy dog. The lazy dog sleeps.",
]


@functools.cache
def _tiny_bpe() -> TokenizersBackend:
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(TRAINING_TEXT * 4, trainer)
    return TokenizersBackend(
        tokenizer_object=tk,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        unk_token="<|endoftext|>",
        pad_token="<|im_end|>",
        chat_template=CHATML_TEMPLATE,
    )


def tiny_bpe_tokenizer() -> TokenizersBackend:
    """A byte-level BPE with ChatML specials (ids 0-2), ~400 tokens, and a ChatML chat template."""
    return copy.deepcopy(_tiny_bpe())


@functools.cache
def _tiny_wordlevel() -> TokenizersBackend:
    words = sorted({w for text in TRAINING_TEXT for w in text.replace("\n", " ").split()} | set(",.?!"))
    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    vocab = {token: i for i, token in enumerate(specials + words)}
    tk = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    tk.add_special_tokens(specials)
    tk.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]",
        pair="[BOS] $A [EOS] $B:1 [EOS]:1",
        special_tokens=[("[BOS]", vocab["[BOS]"]), ("[EOS]", vocab["[EOS]"])],
    )
    return TokenizersBackend(
        tokenizer_object=tk,
        bos_token="[BOS]",
        eos_token="[EOS]",
        unk_token="[UNK]",
        pad_token="[PAD]",
    )


def tiny_wordlevel_tokenizer() -> TokenizersBackend:
    """A whitespace WordLevel vocabulary that wraps texts in ``[BOS] ... [EOS]``; ``[PAD]`` is id 0."""
    return copy.deepcopy(_tiny_wordlevel())
