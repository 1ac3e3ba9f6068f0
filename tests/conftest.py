"""Shared fixtures: the real SmolLM2 default model, converted at most once per test session.

The conversion (about 50 s, 538 MB) lands in the ordinary zip2zip cache, so later sessions reuse it.
Tests that only need plumbing should build tiny random models in-process instead of using these.
"""

from __future__ import annotations

import pytest
import torch

from zip2zip.bundled import base as bundled_base


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run far faster on one thread than on two contended ones (shared 2-core machines).

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``; the thread count is restored.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """Folder of the converted SmolLM2-135M-Instruct checkpoint; skips if the model package is missing."""
    try:
        return bundled_base.default_base_path()
    except bundled_base.DefaultModelUnavailableError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_path: str):
    """The SmolLM2 tokenizer loaded from the converted folder (vocabulary 49152)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_path)
