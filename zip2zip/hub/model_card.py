"""The model card of a zip2zip repo: what the model is, how it was measured, and how it compares with its base.

:func:`render_model_card` fills the package's jinja template (``templates/zip2zip_model_card.md``, package
data) and its YAML front matter from the model's config and what was measured: a ``zip2zip eval`` result
(bits per byte and compression per domain) and, for the shipped model, the release benchmark's summary
(:func:`load_release_summary`: the bars with their verdicts, written by ``benchmarks.release``). The card
says plainly how the model compares with its base, misses included, or that nothing was measured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from zip2zip.bundled.release_summary import ReleaseSummary

DEFAULT_TEMPLATE = Path(__file__).resolve().parent / "templates" / "zip2zip_model_card.md"
"""The model card template (package data, so an installed package exports too)."""


TAGS = ("zip2zip", "custom_code", "hypertokens", "lzw", "adaptive-tokenization", "text-generation")


class ExportError(ValueError):
    """A model folder that cannot be exported (or an exported folder that is incomplete)."""


def _measurement_rows(measurements: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The card's view of a ``zip2zip eval`` result (see :func:`zip2zip.evaluation.scoring.compare_on_domains`)."""
    if not measurements or not measurements.get("domains"):
        return None
    rows = []
    has_base = True
    for domain, result in measurements["domains"].items():
        z = result["zip2zip"]
        base = result.get("base")
        has_base = has_base and base is not None
        rows.append(
            {
                "domain": domain,
                "bytes": z["bytes"],
                "compression": z["compression"],
                "bits_per_byte": z["bits_per_byte"],
                "base_bits_per_byte": base["bits_per_byte"] if base else None,
            }
        )
    return {
        "rows": rows,
        "has_base": has_base,
        "max_length": measurements.get("max_length"),
        "description": measurements.get("description") or "held-out texts",
    }


def _comparison(measurements: Mapping[str, Any] | None, base_model: str | None) -> str:
    """One plain sentence on how the model compares with its base, from what was measured (or that nothing was)."""
    base = base_model or "the base model"
    overall = (measurements or {}).get("overall") or {}
    mine, theirs = overall.get("zip2zip"), overall.get("base")
    if not mine:
        return (
            f"no quality measurement is included with this export, so how it compares with {base} is not "
            "stated here; compression and quality depend on the text."
        )
    compression = float(mine["compression"])
    shorter = 100 * (1 - 1 / compression) if compression > 0 else 0.0
    text = (
        f"on the measured texts it reads and writes {compression:.2f} base tokens per position, so its sequences "
        f"are {shorter:.0f}% shorter than {base}'s."
    )
    if not theirs:
        return text + f" The measurements include no run of {base}, so its quality is not compared with it."
    bpb, base_bpb = float(mine["bits_per_byte"]), float(theirs["bits_per_byte"])
    change = 100 * (bpb / base_bpb - 1) if base_bpb > 0 else 0.0
    verdict = (
        "the same quality"
        if abs(change) < 0.5
        else f"{abs(change):.1f}% {'more' if change > 0 else 'fewer'} bits per byte "
        f"({'worse' if change > 0 else 'better'} than the base)"
    )
    return text + f" Its bits per byte are {bpb:.4f} against {base_bpb:.4f} for {base}: {verdict}."


_VERDICTS = {True: "PASS", False: "MISS", None: "not measured"}


def _release_view(summary: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The card's view of a release summary: its tables as preformatted rows (the template only lays out)."""
    if not summary:
        return None
    bars = [
        {
            "bar": bar["bar"],
            "measured": bar["measured"],
            "verdict": _VERDICTS[bar.get("met")],
            "missed_by": bar.get("missed_by") or "",
        }
        for bar in summary.get("bars", [])
    ]
    bpb = summary.get("bits_per_byte") or {}
    unseen = bpb.get("unseen")
    domains = []
    for domain, row in (bpb.get("domains") or {}).items():
        control = row.get("control")
        domains.append(
            {
                "domain": f"{domain} (unseen)" if domain == unseen else domain,
                "base": f"{row['base']:.4f}",
                "control": f"{control:.4f}" if control else "",
                "zip2zip": f"{row['zip2zip']:.4f}",
                "ratio": f"{row['zip2zip'] / row['base']:.3f}x",
                "control_ratio": f"{row['zip2zip'] / control:.3f}x" if control else "",
                "bar": f"<= {row['bar']:.2f}x" if row.get("bar") else "",
            }
        )
    generation = summary.get("generation") or {}
    gen_rows = []
    for domain, row in (generation.get("domains") or {}).items():
        repeats = row.get("repeated_ngrams") or {}
        gen_rows.append(
            {
                "domain": domain,
                "compression": f"{row['compression']:.3f}",
                "hypertokens": f"{row['hypertoken_share']:.1%}",
                "time_ratio": f"{row['time_ratio']:.3f}x" if row.get("time_ratio") is not None else "",
                "repeated": " / ".join(f"{repeats[k]:.1%}" for k in ("base", "zip2zip") if k in repeats),
            }
        )
    mc_rows = [
        {"task": task, **{_mc_key(name): f"{acc:.1%}" for name, acc in runs.items()}}
        for task, runs in ((summary.get("multiple_choice") or {}).get("accuracy") or {}).items()
    ]
    judged = [bar for bar in bars if bar["verdict"] != "not measured"]
    return {
        "date": summary.get("date", "an unrecorded date"),
        "commit": summary.get("commit", "unknown"),
        "texts": bpb.get("texts", "held-out texts"),
        "window": bpb.get("window"),
        "bars": bars,
        "met": sum(bar["verdict"] == "PASS" for bar in judged),
        "judged": len(judged),
        "domains": domains,
        "has_control": any(row["control"] for row in domains),
        "generation": gen_rows,
        "new_base_tokens": generation.get("new_base_tokens"),
        "ngram": generation.get("ngram", 8),
        "multiple_choice": mc_rows,
        "mc_items": (summary.get("multiple_choice") or {}).get("items"),
        "training": _training_sentence(summary.get("training")),
        "long_context": _long_context_view(summary.get("long_context")),
    }


def _long_context_view(long: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The card's long-context table (zip2zip / base and, where scored, zip2zip / control strict bits per byte
    per domain and window) and a sentence on the long prompt and the cut files; None for a summary without
    that section (one written before it, or a run that skipped it)."""
    if not long or not long.get("domains"):
        return None
    windows = sorted({int(window) for per_window in long["domains"].values() for window in per_window})
    unseen = long.get("unseen")
    rows = []
    for domain, per_window in long["domains"].items():
        scores = [per_window.get(str(window)) or {} for window in windows]
        label = f"{domain} (unseen)" if domain == unseen else domain
        for key, versus in (("base", "base"), ("control", "control (M = 1)")):
            cells = [f"{s['zip2zip'] / s[key]:.3f}x" if s.get(key) else "" for s in scores]
            if any(cells):
                rows.append({"domain": label, "versus": versus, "cells": cells})
    sentences = []
    new = long.get("new_base_tokens")
    if long.get("time_ratio") is not None and long.get("kv_ratio") is not None:
        sentences.append(
            f"After a {long['prompt_base_tokens']:,}-token code prompt it writes {new} new base tokens in "
            f"{long['time_ratio']:.2f}x the base model's time, with {long['kv_ratio']:.2f}x its KV-cache bytes."
        )
    endings = long.get("endings")
    if endings:
        sentences.append(
            f"Continuing {endings['prompts']} held-out code files cut mid-file, the base model writes all {new} "
            f"new base tokens without ending the file on {endings['base_full']} of them, this model on "
            f"{endings['zip2zip_full']}."
        )
    return {
        "windows": [f"{window:,}" for window in windows],
        "rows": rows,
        "has_control": any(row["versus"] != "base" for row in rows),
        "sentence": " ".join(sentences),
    }


def _training_sentence(training: Mapping[str, Any] | None) -> str:
    """What the long run's held-out curve says more tokens would give (its fit), or that nothing was fitted."""
    if not training:
        return ""
    text = f"Trained on {training['base_tokens_seen']:,} base tokens."
    scale = training.get("delta_scale")
    if scale is not None and scale != 1.0:
        text += (
            f" The shipped weights apply the training's change at scale {scale}: every base weight sits at "
            f"base + {scale} x (trained - base), chosen on development text to keep more of the base on text the "
            "run never saw."
        )
    fit = training.get("fit")
    if not fit:
        return text + " The held-out curve had too few points for a fit."
    return text + (
        f" A fit a + b * tokens^-c of the run's pooled held-out curve ({fit['points']} points) goes from "
        f"{fit['at_seen']:.4f} bits per byte at the tokens seen to {fit['extrapolated']['2x']:.4f} at 2x and "
        f"{fit['extrapolated']['4x']:.4f} at 4x: an extrapolation, not a measurement."
    )


def _mc_key(name: str) -> str:
    """``zip2zip``, ``base (hf)``, ``base (zip2zip class)`` as template keys."""
    return {"zip2zip": "zip2zip", "base (hf)": "base"}.get(name, "other")


def _release_comparison(summary: Mapping[str, Any], base_model: str | None) -> str:
    """One plain sentence (or three) on how the model compares with its base in the release benchmark, every
    missed bar named with how far it is missed."""
    base = base_model or "the base model"
    bars = summary.get("bars", [])
    judged = [bar for bar in bars if bar.get("met") is not None]
    missed = [bar for bar in judged if not bar["met"]]
    domains = (summary.get("bits_per_byte") or {}).get("domains") or {}
    unseen = (summary.get("bits_per_byte") or {}).get("unseen")
    ratios = [
        f"{row['zip2zip'] / row['base']:.3f}x on {domain}{' (unseen)' if domain == unseen else ''}"
        for domain, row in domains.items()
        if row.get("bar")
    ]
    text = (
        f"in the release benchmark of {summary.get('date', 'an unrecorded date')} (commit "
        f"{summary.get('commit', 'unknown')}) it meets {len(judged) - len(missed)} of {len(judged)} measured "
        "bars."
    )
    if ratios:
        text += f" Its strict bits per byte relative to {base}'s are {', '.join(ratios)}."
    overall = domains.get("overall") or {}
    if overall.get("control"):
        text += (
            f" Against the same recipe without compression (M = 1) they are "
            f"{overall['zip2zip'] / overall['control']:.3f}x overall."
        )
    code = ((summary.get("generation") or {}).get("domains") or {}).get("code")
    if code:
        text += f" Its own greedy code continuations write {code['compression']:.2f} base tokens per decoding step"
        if code.get("time_ratio") is not None:
            text += f" and {code['time_ratio']:.2f}x the time {base} needs for the same tokens"
        text += "."
    if missed:
        text += (
            " Missed: "
            + "; ".join(f"{bar['bar']} ({bar['measured']}, by {bar['missed_by']})" for bar in missed)
            + "."
        )
    elif judged:
        text += " It meets every measured bar."
    return text


def render_model_card(
    config: Any,
    *,
    repo_id: str,
    base_model: str | None,
    license: str,
    trained: bool,
    measurements: Mapping[str, Any] | None = None,
    template_path: str | os.PathLike | None = None,
    extra_tags: tuple[str, ...] = (),
    model_name: str | None = None,
    dtype: str | None = None,
    release: ReleaseSummary | None = None,
) -> Any:
    """A ``huggingface_hub.ModelCard`` for a zip2zip model, from the jinja template in ``templates/``.

    The YAML front matter carries library_name, pipeline_tag, base_model, tags (zip2zip, custom_code, ...),
    license, a ``model-index`` with the measured bits per byte per domain, and a ``zip2zip`` block with the
    codec settings and the overall compression and bits per byte. The text says how the model compares with
    its base when the measurements include the base, and that no quality measurement is included when there
    is none. ``release`` (a release benchmark summary, :func:`load_release_summary`) adds its bars with their
    verdicts, bits per byte per domain against the base and the no-compression control, generation,
    next-line accuracy and, when measured, long context, and the comparison then comes from it, misses
    included. ``model_name`` defaults to
    the last part of ``repo_id``.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    template = Path(template_path) if template_path is not None else DEFAULT_TEMPLATE
    if not template.is_file():
        raise ExportError(
            f"model card template {template} not found; pass template_path= (or --card-template) pointing to a "
            "jinja template such as zip2zip/hub/templates/zip2zip_model_card.md from the zip2zip source tree"
        )
    settings = {
        name: getattr(config, name)
        for name in (
            "base_vocab_size",
            "max_codebook_size",
            "max_subtokens",
            "protect_digits",
            "protect_whitespace",
            "encoder_num_layers",
            "position_mode",
        )
    }
    settings["initial_codebook_entries"] = len(getattr(config, "initial_codebook", None) or ())
    summary: dict[str, Any] = {**settings, "trained": bool(trained)}
    rows = _measurement_rows(measurements)
    eval_results = None
    if rows:
        overall = measurements.get("overall", {})
        if overall:
            summary["compression"] = round(float(overall["zip2zip"]["compression"]), 4)
            summary["bits_per_byte"] = round(float(overall["zip2zip"]["bits_per_byte"]), 4)
            if overall.get("base"):
                summary["base_bits_per_byte"] = round(float(overall["base"]["bits_per_byte"]), 4)
        eval_results = [
            EvalResult(
                task_type="text-generation",
                task_name="Language modelling (bits per byte, strict)",
                dataset_type="zip2zip-heldout",
                dataset_name=f"{row['domain']} (held-out)",
                dataset_config=row["domain"],
                metric_type="bits_per_byte",
                metric_name="bits per byte",
                metric_value=round(float(row["bits_per_byte"]), 4),
            )
            for row in rows["rows"]
        ]
    release_view = _release_view(release)
    if release_view:
        summary["release"] = {
            "date": release_view["date"],
            "commit": release_view["commit"],
            "bars_met": release_view["met"],
            "bars_measured": release_view["judged"],
        }
        if eval_results is None:
            eval_results = _release_eval_results(release, EvalResult) or None
    name = model_name or repo_id.split("/")[-1]
    dtype = dtype or str(getattr(config, "dtype", None) or "float32").removeprefix("torch.")
    card_data = ModelCardData(
        language=None,
        library_name="transformers",
        pipeline_tag="text-generation",
        base_model=base_model,
        base_model_relation="finetune" if base_model else None,
        tags=list(dict.fromkeys((*TAGS, *extra_tags))),
        license=license,
        model_name=name,
        eval_results=eval_results,
        zip2zip=summary,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template),
        repo_id=repo_id,
        model_name=name,
        base_model=base_model or "its base model",
        trained=bool(trained),
        measurements=rows,
        release=release_view,
        disabled_count=len(config.disabled_ids),
        comparison=(
            _release_comparison(release, base_model)
            if release_view
            else _comparison(measurements if rows else None, base_model)
        ),
        measured_comparison=_comparison(measurements if rows else None, base_model),
        dtype=dtype,
        **settings,
    )


def _release_eval_results(release: Mapping[str, Any], eval_result: Any) -> list[Any]:
    """The release summary's zip2zip bits per byte per domain as ``model-index`` entries (no ``overall``)."""
    domains = (release.get("bits_per_byte") or {}).get("domains") or {}
    return [
        eval_result(
            task_type="text-generation",
            task_name="Language modelling (bits per byte, strict)",
            dataset_type="zip2zip-heldout",
            dataset_name=f"{domain} (held-out)",
            dataset_config=domain,
            metric_type="bits_per_byte",
            metric_name="bits per byte",
            metric_value=round(float(row["zip2zip"]), 4),
        )
        for domain, row in domains.items()
        if domain != "overall"
    ]
