"""The release summary written into the shipped checkpoint folder, which the model card renders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.release.bars import bpb_domains, release_bars, repeated_shares, same_work_ratios
from benchmarks.release.settings import BPB_BARS, MC_DOMAINS, MC_TASKS, REPEATED_NGRAM, UNSEEN_DOMAIN
from zip2zip.bundled.release_summary import (
    RELEASE_SUMMARY_FILENAME,
    RELEASE_SUMMARY_FORMAT,
    ReleaseBar,
    ReleaseSummary,
)
from zip2zip.bundled.shipped import shipped_checkpoint_dir


def release_summary(report: dict[str, Any]) -> ReleaseSummary:
    """The compact part of the report the shipped model's card shows (``zip2zip.hub.model_card`` renders it): the bars
    with their measured values and verdicts, bits per byte per domain (base, zip2zip, control), generation
    compression, speed and repetition, next-line accuracies, long context, and when and on which weights it was
    measured.
    """
    run = report["run"]
    compared = report["bits_per_byte"]["compared"]
    control = report["bits_per_byte"].get("control") or {}
    domains = {}
    for domain in [*bpb_domains(report), "overall"]:
        entry = compared["overall"] if domain == "overall" else compared["domains"][domain]
        c = (
            control.get("overall") if domain == "overall" else control.get("domains", {}).get(domain, {})
        ) or {}
        domains[domain] = {
            "base": round(entry["base"]["bits_per_byte"], 4),
            "zip2zip": round(entry["zip2zip"]["bits_per_byte"], 4),
            "control": round(c["zip2zip"]["bits_per_byte"], 4) if "zip2zip" in c else None,
            "compression": round(entry["zip2zip"]["compression"], 3),
            "bar": BPB_BARS.get(domain),
        }
    results = report["generation"]["results"]
    same_work = same_work_ratios(results)
    generation = {}
    for row in report["generation"]["rows"]:
        z, domain = row["zip2zip"], row["domain"]
        shares = repeated_shares(results.get(domain, {}))
        generation[domain] = {
            "compression": round(z.get("compression", 1.0), 3),
            "hypertoken_share": round(z.get("hypertoken_rate", 0.0), 4),
            "time_ratio": round(same_work[domain]["time"], 3) if domain in same_work else None,
            "bytes_per_s_ratio": round(z["bytes_per_s"] / row["base"]["bytes_per_s"], 3),
            "repeated_ngrams": {k: round(shares[k], 4) for k in ("base", "zip2zip") if k in shares},
        }
    mc = report["multiple_choice"]
    accuracy = {
        MC_TASKS[d]: {name: round(run_["tasks"][MC_TASKS[d]]["acc"], 4) for name, run_ in mc.items()}
        for d in MC_DOMAINS
    }
    fit = (report.get("training_run") or {}).get("fit")
    return ReleaseSummary(
        **{
            "format": RELEASE_SUMMARY_FORMAT,
            "date": run["date"],
            "commit": run["commit"],
            "command": run["command"],
            "model_digest": run.get("model_digest"),
            "quick": bool(run["settings"]["quick"]),
            "bars": [
                ReleaseBar(bar=bar.name, measured=bar.measured, met=bar.met, missed_by=bar.missed_by)
                for bar in release_bars(report)
            ],
            "bits_per_byte": {
                "texts": f"first {run['settings']['eval_chars']:,} characters of each held-out domain",
                "window": compared["max_length"],
                "unseen": UNSEEN_DOMAIN,
                "domains": domains,
                "control": run.get("control"),
            },
            "generation": {
                "new_base_tokens": run["settings"]["new_tokens"],
                "prompts": run["settings"]["prompts"],
                "ngram": REPEATED_NGRAM,
                "domains": generation,
            },
            "multiple_choice": {"items": run["settings"]["mc_items"], "accuracy": accuracy},
            "long_context": long_context_summary(report),
            "training": (
                {
                    "base_tokens_seen": report["training_run"]["heldout"][-1]["base_tokens_seen"],
                    "fit": fit,
                    "delta_scale": run.get("delta_scale"),
                }
                if report.get("training_run")
                else None
            ),
        }
    )


def long_context_summary(report: dict[str, Any]) -> dict[str, Any] | None:
    """Section 5 for the card: bits per byte per domain and window (base, zip2zip, control), the time and KV
    cache after the long code prompt relative to the base, and the continuations of cut files; None when the
    report has no such section."""
    long = report.get("long_context")
    if not long:
        return None
    domains = {}
    for domain, entry in long["quality"].items():
        domains[domain] = {}
        for window, scores in entry["windows"].items():
            control = scores.get("control")
            domains[domain][window] = {
                "base": round(scores["base"]["bits_per_byte"], 4),
                "zip2zip": round(scores["zip2zip"]["bits_per_byte"], 4),
                "control": round(control["bits_per_byte"], 4) if control else None,
                "compression": round(scores["zip2zip"]["compression"], 3),
            }
    continuation, kv, endings = long["continuation"], long["kv_cache"], long["endings"]
    return {
        "unseen": UNSEEN_DOMAIN,
        "documents": {domain: entry["characters"] for domain, entry in long["quality"].items()},
        "domains": domains,
        "prompt_base_tokens": continuation["prompt_base_tokens"],
        "new_base_tokens": continuation["new_base_tokens"],
        "time_ratio": round(continuation["ratio"], 3),
        "kv_ratio": round(kv["zip2zip"] / kv["base"], 3),
        "endings": {key: endings[key] for key in ("prompts", "base_full", "zip2zip_full")},
    }


def write_release_summary(report: dict[str, Any], folder: Path) -> Path:
    """``release_results.json`` in ``folder`` (the shipped checkpoint folder, package data), for the card."""
    path = folder / RELEASE_SUMMARY_FILENAME
    path.write_text(
        json.dumps(release_summary(report), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return path


def summary_folder(report: dict[str, Any]) -> Path | None:
    """Where the card's summary goes: the shipped checkpoint folder when this report measured the shipped
    weights in a full run, else nowhere (a smoke run or another model must not speak for the shipped one)."""
    run = report["run"]
    if run["settings"]["quick"] or not run.get("shipped") or not run.get("model_digest"):
        return None
    return shipped_checkpoint_dir()
