"""The no-compression control (``max_subtokens=1``): loaded from its folder or carried from an earlier report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import load_zip2zip
from benchmarks.release.settings import CONTROL_COMMAND


def load_control(folder: str, base_tokenizer: Any) -> tuple[Any, Any]:
    """The no-compression control: a zip2zip model trained like the shipped one but with ``max_subtokens=1``.

    With M = 1 the LZW codebook never merges, so the control reads and writes base tokens through the same
    architecture, recipe and data: what it loses against the base model is the fine-tuning's doing, and what
    zip2zip loses against it is the compression's. Any other M would not isolate that, so it is refused.
    """
    if not Path(folder).is_dir():
        raise SystemExit(f"--control {folder}: no such folder; pass the --output folder of the control run")
    model, tokenizer = load_zip2zip(folder, base_tokenizer)
    subtokens = getattr(model.config, "max_subtokens", None)
    if subtokens != 1:
        raise SystemExit(
            f"--control {folder}: max_subtokens={subtokens}, but the control must have max_subtokens=1 (no "
            f"hypertokens); train it with `{CONTROL_COMMAND}` and pass RUN"
        )
    return model, tokenizer


def read_carried_control(path: str) -> dict[str, Any]:
    """The control's scores from an earlier ``results.json`` (``--control FILE``), for when its folder is gone.

    The control's weights do not change with the zip2zip model, so its scores on the same texts and windows
    stay true; :func:`check_carried_control` checks that they are the same before they are shown. Its
    long-context scores come along when that run measured them (:func:`carry_long_context_control`).
    """
    try:
        earlier = json.loads(Path(path).read_text(encoding="utf-8"))
        scores, run = earlier["bits_per_byte"]["control"], earlier["run"]["control"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SystemExit(
            f"--control {path}: not a results.json with the control's scores ({error!r}); pass the control's "
            "folder or a results.json of a run that measured it"
        ) from None
    when = f"{earlier['run'].get('date')}, commit {earlier['run'].get('commit')}"
    carried_from = run.get("carried_from") or f"{path} (measured {when})"
    quality = (earlier.get("long_context") or {}).get("quality") or {}
    long_context = {
        domain: {
            "digest": entry.get("digest"),
            "windows": {w: s["control"] for w, s in entry.get("windows", {}).items() if "control" in s},
        }
        for domain, entry in quality.items()
    }
    return {
        "scores": scores,
        "run": {**run, "carried_from": carried_from},
        "long_context": {domain: entry for domain, entry in long_context.items() if entry["windows"]},
    }


def carry_long_context_control(quality: dict[str, Any], carried: dict[str, Any]) -> list[str]:
    """Put the carried control's long-context scores into ``quality`` (``benchmarks.long_context``'s
    ``measure_quality``) where they were measured on the same documents and windows; the cells without them stay
    empty. Returns what was left out and why, for a warning."""
    left_out = []
    for domain, entry in quality.items():
        mine = (carried.get("long_context") or {}).get(domain)
        if not mine:
            left_out.append(f"{domain}: the earlier run has no long-context control scores")
            continue
        if mine["digest"] != entry["digest"]:
            left_out.append(f"{domain}: the earlier run read other documents")
            continue
        for window, scores in entry["windows"].items():
            control = mine["windows"].get(window)
            base = scores["base"]
            if control is None:
                left_out.append(f"{domain}, window {window}: not measured in the earlier run")
            elif (control["bytes"], control["base_tokens"]) != (base["bytes"], base["base_tokens"]):
                left_out.append(f"{domain}, window {window}: other bytes or base tokens")
            else:
                scores["control"] = control
    return left_out


def check_carried_control(carried: dict[str, Any], compared: dict[str, Any]) -> dict[str, Any]:
    """The carried control's scores, once every domain is shown to cover the bytes and base tokens this run's
    base model read, in windows of the same length."""
    scores = carried["scores"]
    if scores.get("max_length") != compared["max_length"]:
        raise SystemExit(
            f"--control: the control was scored in windows of {scores.get('max_length')} positions, this run "
            f"uses {compared['max_length']}; measure it again (pass its folder) or use the same --max-length"
        )
    for domain, entry in compared["domains"].items():
        base = entry["base"]
        mine = (scores["domains"].get(domain) or {}).get("zip2zip") or {}
        same = all(mine.get(key) == base.get(key) for key in ("bytes", "base_tokens", "texts"))
        if not same:
            raise SystemExit(
                f"--control: on {domain} the carried control read {mine.get('bytes')} bytes / "
                f"{mine.get('base_tokens')} base tokens, this run {base['bytes']} / {base['base_tokens']}: other "
                "texts; measure the control again (pass its folder)"
            )
    return {**scores, "carried_from": carried["run"]["carried_from"]}
