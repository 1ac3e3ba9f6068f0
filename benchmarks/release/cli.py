"""The release benchmark's command line: a measuring run, or ``--render-only`` from an earlier ``results.json``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchmarks.release
from benchmarks.common import load_models, resolve_model
from benchmarks.release.control import load_control, read_carried_control
from benchmarks.release.curves import read_control_run, read_training_run
from benchmarks.release.items import build_next_line_items, write_items
from benchmarks.release.measure import (
    measure_bits_per_byte,
    measure_generation,
    measure_long_context,
    measure_multiple_choice,
)
from benchmarks.release.plots import plot
from benchmarks.release.provenance import backfill_delta_scale, describe_run
from benchmarks.release.report import render
from benchmarks.release.settings import BENCHMARKS, CONTROL_COMMAND, FULL, MC_DOMAINS, QUICK
from benchmarks.release.summary import summary_folder, write_release_summary


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The flags; a size left out falls back to FULL (QUICK with ``--quick``) in :func:`resolve_settings`."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.release", description=benchmarks.release.__doc__.split("\n")[0]
    )
    parser.add_argument("--model", default=None, help="zip2zip model folder (default: the shipped one)")
    parser.add_argument(
        "--control",
        default=None,
        metavar="FOLDER",
        help="the no-compression control (same recipe and tokens, max_subtokens=1), scored beside base and "
        f"zip2zip; train it with `{CONTROL_COMMAND}`; or a results.json this script wrote earlier, whose control "
        "scores are kept when the control's folder is gone (checked to be on the same texts and windows)",
    )
    parser.add_argument(
        "--run",
        default=None,
        metavar="FOLDER",
        help="the long training run's output folder (heldout.json, checkpoint-*/): its curves and their fit; "
        "or a results.json this script wrote earlier, whose curves are kept (when the folder is gone)",
    )
    parser.add_argument(
        "--control-run",
        default=None,
        metavar="FOLDER",
        help="the control's training output folder: its held-out curve beside the long run's, compared at equal "
        "base tokens (default: --control's folder when it holds heldout.json; works with --render-only, also "
        "while the control still trains)",
    )
    parser.add_argument("--out", default=str(BENCHMARKS / "RESULTS.md"), help="the Markdown report to write")
    parser.add_argument(
        "--assets", default=None, help="folder of plots and raw data (default: results/release beside --out)"
    )
    parser.add_argument(
        "--eval-chars", type=int, help=f"held-out characters per domain ({FULL['eval_chars']:,})"
    )
    parser.add_argument("--prompts", type=int, help=f"generation prompts per domain ({FULL['prompts']})")
    parser.add_argument("--prompt-tokens", type=int, help=f"base tokens per prompt ({FULL['prompt_tokens']})")
    parser.add_argument(
        "--new-tokens", type=int, help=f"new base tokens per generation ({FULL['new_tokens']})"
    )
    parser.add_argument(
        "--repeats", type=int, help=f"generation runs per prompt and config ({FULL['repeats']})"
    )
    parser.add_argument("--mc-items", type=int, help=f"multiple-choice items per domain ({FULL['mc_items']})")
    parser.add_argument("--max-length", type=int, help=f"positions per scored window ({FULL['max_length']})")
    parser.add_argument(
        "--long-context",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="section 5: bits per byte by window, the continuation after a long code prompt, file endings",
    )
    parser.add_argument(
        "--long-windows",
        type=int,
        nargs="+",
        help=f"long-context windows in positions ({' '.join(map(str, FULL['long_windows']))})",
    )
    parser.add_argument(
        "--long-documents", type=int, help=f"long held-out documents per domain ({FULL['long_documents']})"
    )
    parser.add_argument(
        "--long-chars", type=int, help=f"characters per long document ({FULL['long_chars']:,})"
    )
    parser.add_argument(
        "--long-prompt-tokens",
        type=int,
        help=f"base tokens of the long code prompt ({FULL['long_prompt_tokens']})",
    )
    parser.add_argument(
        "--long-new-tokens",
        type=int,
        help=f"new base tokens after the long prompt and after each cut file ({FULL['long_new_tokens']})",
    )
    parser.add_argument(
        "--long-repeats", type=int, help=f"timed runs after the long prompt ({FULL['long_repeats']})"
    )
    parser.add_argument(
        "--long-endings", type=int, help=f"held-out code files continued mid-file ({FULL['long_endings']})"
    )
    parser.add_argument(
        "--long-ending-chars",
        type=int,
        help=f"characters of each mid-file prompt ({FULL['long_ending_chars']:,})",
    )
    parser.add_argument("--mc-context", type=int, default=4, help="lines / sentences of context per item")
    parser.add_argument(
        "--pld-tokens", type=int, default=10, help="prompt_lookup_num_tokens of prompt lookup"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the multiple-choice items")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (fixed for every part)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run of a few minutes")
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the report and plots from results.json, measure nothing",
    )
    return parser.parse_args(argv)


def resolve_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Sizes given on the command line, else the full (or, with --quick, the tiny) defaults."""
    defaults = QUICK if args.quick else FULL
    settings = {
        name: getattr(args, name) if getattr(args, name) is not None else value
        for name, value in defaults.items()
    }
    settings.update(
        quick=args.quick,
        long_context=args.long_context,
        mc_context=args.mc_context,
        pld_tokens=args.pld_tokens,
        seed=args.seed,
        threads=args.threads,
    )
    counts = ("eval_chars", "prompts", "prompt_tokens", "new_tokens", "repeats", "mc_items", "mc_context")
    counts += tuple(name for name in FULL if name.startswith("long_") and name != "long_windows")
    for name in counts:
        if settings[name] < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be at least 1 (got {settings[name]})")
    if settings["max_length"] < 16:
        raise SystemExit(f"--max-length must be at least 16 positions (got {settings['max_length']})")
    if min(settings["long_windows"]) < 16:
        raise SystemExit(
            f"--long-windows must be at least 16 positions each (got {settings['long_windows']})"
        )
    settings["long_windows"] = sorted(set(settings["long_windows"]))
    return settings


def main(argv: Sequence[str] | None = None) -> None:
    """Measure everything side by side in one process, then write ``results.json``, the plots and RESULTS.md."""
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    out = Path(args.out).resolve()
    assets = Path(args.assets).resolve() if args.assets else out.parent / "results" / "release"
    if args.render_only:
        render_only(args, out, assets)
        return
    settings = resolve_settings(args)
    folder = resolve_model(args.model)
    curves = read_training_run(args.run) if args.run else None  # fail on a wrong folder before measuring
    control_curves = read_control_run(args)
    assets.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    from zip2zip.corpora.store import load_corpus

    items = build_next_line_items(
        {d: load_corpus(d, split="heldout") for d in MC_DOMAINS},
        settings["mc_items"],
        settings["seed"],
        settings["mc_context"],
    )
    items_path = assets / "next_line.jsonl"
    write_items(items, items_path)

    models = load_models(folder)
    if args.control and Path(args.control).is_file():
        models["carried_control"] = read_carried_control(args.control)
    elif args.control:
        models["control"], models["control_tokenizer"] = load_control(args.control, models["base_tokenizer"])
    report: dict[str, Any] = {"run": describe_run(args, folder, settings, models), "timings": {}}
    if curves:
        report["training_run"] = curves
    if control_curves:
        report["control_run"] = control_curves
        _warn_without_run(report)
    sections = [
        ("bits_per_byte", lambda: measure_bits_per_byte(models, settings)),
        ("generation", lambda: measure_generation(models, settings)),
        ("multiple_choice", lambda: measure_multiple_choice(models, folder, items_path, settings)),
    ]
    if settings["long_context"]:
        sections.append(("long_context", lambda: measure_long_context(models, settings)))
    for name, work in sections:
        print(f"== {name}", file=sys.stderr)
        start = time.perf_counter()
        report[name] = work()
        report["timings"][name] = time.perf_counter() - start
    generation = report["generation"]
    generation["pld_mismatches"] = [
        f"{domain} prompt {base['prompt']}"
        for domain, runs in generation["results"].items()
        for base, pld in zip(runs["base"], runs["pld"])
        if base["output"] != pld["output"]
    ]
    report["seconds"] = time.perf_counter() - started

    (assets / "results.json").write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n")
    write_outputs(report, out, assets)
    print(f"wrote {out} and {assets}/ in {report['seconds'] / 60:.1f} minutes", file=sys.stderr)


def render_only(args: argparse.Namespace, out: Path, assets: Path) -> None:
    """Redraw the report from ``results.json``; with ``--run`` / ``--control-run``, re-read those curves first."""
    if args.control:
        raise SystemExit(
            f"--control {args.control} needs a measuring run (the control is scored beside the others); drop "
            "--render-only or --control"
        )
    path = assets / "results.json"
    if not path.is_file():
        raise SystemExit(
            f"--render-only: {path} does not exist; run the benchmark once without --render-only"
        )
    report = json.loads(path.read_text(encoding="utf-8"))
    filled = backfill_delta_scale(report["run"])
    if args.run:
        report["training_run"] = read_training_run(args.run)
    control_curves = read_control_run(args)
    if control_curves:
        report["control_run"] = control_curves
        _warn_without_run(report)
    if args.run or control_curves or filled:
        path.write_text(json.dumps(report, indent=1, ensure_ascii=False, default=str) + "\n")
    write_outputs(report, out, assets)
    print(f"rewrote {out} from {path}", file=sys.stderr)


def write_outputs(report: dict[str, Any], out: Path, assets: Path) -> None:
    """The plots, RESULTS.md and, for a full run of the shipped model, the model card's summary."""
    plot(report, assets)
    out.write_text(render(report, out, assets), encoding="utf-8")
    folder = summary_folder(report)
    if folder is not None:
        print(f"wrote {write_release_summary(report, folder)}", file=sys.stderr)


def _warn_without_run(report: dict[str, Any]) -> None:
    """A control curve shows only beside the long run's; say so when the report lacks the latter."""
    if not report.get("training_run"):
        print(
            "warning: the control's curve is kept but not shown: section 4 compares it with the long run's curve, "
            "which this report lacks (add --run FOLDER or --run results.json)",
            file=sys.stderr,
        )
