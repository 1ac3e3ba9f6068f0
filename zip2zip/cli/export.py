"""``zip2zip export``: a complete Hub repo folder (trust_remote_code) with a model card."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from zip2zip.cli.output import note
from zip2zip.recipe import DOMAINS

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="write a complete Hub repo folder (trust_remote_code) with a model card",
        description=(
            "Build a Hub repo folder from a saved zip2zip model (the output of `zip2zip train` or any "
            "save_pretrained folder): config.json with auto_map, the model code, safetensors weights, the "
            "tokenizer files with auto_map, generation_config.json and a README.md model card. It loads with "
            "from_pretrained(OUT_DIR, trust_remote_code=True) in a process without this package. The card's "
            "table of compression and bits per byte is filled only when measurements are given: "
            "--measurements EVAL_JSON (from `zip2zip eval --model MODEL_DIR --json EVAL_JSON`) or --measure N "
            "(measured now on N held-out texts per domain); without either the card says that no quality measurement "
            "is included. The shipped model's card also carries the release benchmark's results of its weights "
            "(bars, bits per byte against the base, generation, next-line accuracy) when "
            "`python -m benchmarks.release` measured them."
        ),
    )
    p.add_argument(
        "model_dir",
        metavar="MODEL_DIR",
        help="saved zip2zip model and tokenizer, or 'shipped' for the trained model that ships with the package",
    )
    p.add_argument("out_dir", metavar="OUT_DIR", help="the repo folder to write (new or empty)")
    p.add_argument(
        "--repo-id",
        default=None,
        help="Hub id the card's examples use and its name (default: zip2zip-<base model name>)",
    )
    p.add_argument("--base-model", default=None, help="the base model's Hub id for the card")
    p.add_argument("--license", default=None, help="license id (the base model's; known for SmolLM2)")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--measurements",
        default=None,
        metavar="EVAL_JSON",
        help="a `zip2zip eval --json` result for the card's table",
    )
    g.add_argument(
        "--measure",
        type=int,
        default=0,
        metavar="N",
        help="measure now on N held-out texts per domain (a few minutes on a CPU for N=4; default: no "
        "measurements)",
    )
    p.add_argument("--domains", nargs="+", default=list(DOMAINS), help="domains for --measure (default: all)")
    p.add_argument(
        "--base-model-path",
        default=None,
        help="base model folder to compare against with --measure (default: the one the model was made from, "
        "when it is local)",
    )
    p.add_argument(
        "--trained",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the hyper-encoders were trained (default: detected from the run's files)",
    )
    p.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default=None,
        help="dtype of the written weights, recorded in config.json (default: the dtype the model was trained "
        "in: bfloat16, the recipe's bf16 autocast, unless config.json records float16 weights; float32 keeps the "
        "float32 master weights at twice the size)",
    )
    p.add_argument("--card-template", default=None, help="another jinja model card template")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty OUT_DIR")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from zip2zip.bundled.release_summary import RELEASE_SUMMARY_FILENAME
    from zip2zip.cli.eval import heldout_texts
    from zip2zip.hub.export import export_repo
    from zip2zip.hub.model_card import ExportError
    from zip2zip.loading import is_trained

    measurements = None
    if args.measurements:
        try:
            with open(args.measurements, encoding="utf-8") as handle:
                measurements = json.load(handle)
        except (OSError, ValueError) as error:
            raise SystemExit(
                f"zip2zip export: --measurements {args.measurements}: cannot read it as JSON ({error})"
            ) from None
    model_dir = args.model_dir
    if model_dir == "shipped":
        from zip2zip.bundled import shipped

        model_dir = shipped.shipped_zip2zip_path()
        if model_dir is None:
            raise SystemExit(
                f"zip2zip export: no trained checkpoint ships in {shipped.shipped_checkpoint_dir()}; pass the "
                "folder of a trained zip2zip model instead"
            )
    texts = None
    base_path = args.base_model_path
    if args.measure and measurements is None:
        texts = heldout_texts(args.domains, args.measure)
        measurements = measure(model_dir, base_path, texts, args.dtype)
    trained = args.trained
    if trained is None and os.path.isdir(model_dir):
        trained = is_trained(model_dir)
    try:
        out = export_repo(
            model_dir,
            args.out_dir,
            repo_id=args.repo_id,
            base_model=args.base_model,
            license=args.license,
            trained=trained,
            measurements=measurements,
            template_path=args.card_template,
            overwrite=args.overwrite,
            dtype=args.dtype,
        )
    except ExportError as error:
        raise SystemExit(f"zip2zip export: {error}") from None
    print(f"wrote {out}: " + ", ".join(sorted(os.listdir(out))))
    if os.path.isfile(os.path.join(out, RELEASE_SUMMARY_FILENAME)):
        note(
            f"the card carries the release benchmark's results of these weights ({RELEASE_SUMMARY_FILENAME})"
        )
    elif not (measurements or texts):
        note("the card has no measurements; add them with --measure N or --measurements EVAL_JSON")
    return 0


def measure(model_dir: str, base_path: str | None, texts: dict[str, list[str]], dtype: str | None) -> dict:
    """Compression and bits per byte of the model, in the dtype it is exported in, beside its base model (the one
    at ``base_path``, else the one its config names) on ``texts``: what the card's table shows."""
    import torch
    from transformers import AutoConfig

    from zip2zip.evaluation.scoring import compare_on_domains
    from zip2zip.hub.export import export_dtype
    from zip2zip.loading import base_model_path, load_model_and_tokenizer

    config = AutoConfig.from_pretrained(model_dir, trust_remote_code=True)
    if base_path is None:
        base_path = base_model_path(config)
    model, tokenizer = load_model_and_tokenizer(model_dir, dtype=getattr(torch, export_dtype(config, dtype)))
    base = load_model_and_tokenizer(base_path) if base_path else (None, None)
    return compare_on_domains(
        texts,
        model.eval(),
        tokenizer,
        *base,
        progress=True,
        description=f"{sum(map(len, texts.values()))} texts, measured at export",
    )
