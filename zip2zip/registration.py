"""Registers zip2zip with transformers' Auto classes without importing transformers at ``import zip2zip``.

After ``import zip2zip``, ``AutoConfig``, ``AutoModelForCausalLM``, ``AutoModel`` and ``AutoTokenizer`` resolve
``model_type="zip2zip"`` to our classes, so a local zip2zip folder loads without ``trust_remote_code``.
Registering needs transformers and torch (seconds to import), which ``zip2zip --help`` or a script that only
uses the codec should not pay. So the registration waits until the program imports transformers' Auto
classes itself: :func:`register_when_transformers_loads` puts a finder on ``sys.meta_path`` that counts the
imports of ``transformers`` and ``zip2zip`` modules in progress and registers as soon as
``transformers.models.auto`` is loaded and none of them is half done (registering imports our model code,
which needs the modules it imports to be complete). The finder then removes itself.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import threading
import warnings
from typing import Any

__all__ = ["is_registered", "register_auto_classes", "register_when_transformers_loads"]

AUTO_MODULE = "transformers.models.auto"
_WATCHED_PACKAGES = ("transformers", "zip2zip")
_state = {"registered": False}


def register_auto_classes() -> None:
    """Register the zip2zip config, model and tokenizer with the Auto classes now (imports torch)."""
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    from .configuration_zip2zip import Zip2ZipConfig
    from .modeling_zip2zip import Zip2ZipForCausalLM
    from .tokenization_zip2zip import Zip2ZipTokenizer

    AutoConfig.register("zip2zip", Zip2ZipConfig, exist_ok=True)
    AutoModelForCausalLM.register(Zip2ZipConfig, Zip2ZipForCausalLM, exist_ok=True)
    # No headless zip2zip class: AutoModel gives the whole model (Zip2ZipForCausalLM.save_pretrained says why).
    AutoModel.register(Zip2ZipConfig, Zip2ZipForCausalLM, exist_ok=True)
    AutoTokenizer.register(Zip2ZipConfig, tokenizer_class=Zip2ZipTokenizer, exist_ok=True)
    _state["registered"] = True


def is_registered() -> bool:
    """Whether the Auto classes know model_type "zip2zip" yet (they do once transformers' Auto is imported)."""
    return _state["registered"]


def register_when_transformers_loads() -> None:
    """Register now if transformers' Auto classes are already imported, else as soon as they are."""
    if _state["registered"]:
        return
    if AUTO_MODULE in sys.modules:
        register_auto_classes()
        return
    if not any(isinstance(finder, _RegisteringFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisteringFinder())


class _RegisteringFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: it lets the other finders find ``transformers``/``zip2zip`` modules and gives
    their source loaders a subclass that reports when each module has finished executing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_progress = 0

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname.partition(".")[0] not in _WATCHED_PACKAGES:
            return None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if type(spec.loader) is importlib.machinery.SourceFileLoader:
            spec.loader = _ReportingLoader(spec.loader.name, spec.loader.path, self)
        return spec

    def started(self) -> None:
        with self._lock:
            self._in_progress += 1

    def finished(self) -> bool:
        """Count one import as done; True when no watched import is in progress any more."""
        with self._lock:
            self._in_progress -= 1
            return self._in_progress == 0

    def register_if_ready(self) -> None:
        if _state["registered"] or AUTO_MODULE not in sys.modules:
            return
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        try:
            register_auto_classes()
        except Exception as error:  # an import error here must not break the program's own import
            warnings.warn(
                f"zip2zip could not register its Auto classes ({type(error).__name__}: {error}); call "
                "zip2zip.registration.register_auto_classes() to see the full error",
                stacklevel=2,
            )


class _ReportingLoader(importlib.machinery.SourceFileLoader):
    """A source loader (so ``isinstance`` checks and resource readers keep working) that tells the finder
    when the module it executes is complete."""

    def __init__(self, fullname: str, path: str, finder: _RegisteringFinder) -> None:
        super().__init__(fullname, path)
        self._finder = finder

    def exec_module(self, module: Any) -> None:
        self._finder.started()
        try:
            super().exec_module(module)
        finally:
            idle = self._finder.finished()
        if idle:
            self._finder.register_if_ready()
