"""Compression per domain: how much shorter LZW hypertokens make SmolLM2 token streams.

For each corpus domain of :mod:`zip2zip.corpora` (code, prose, math, multilingual), whole source files
(at most ``--file-tokens`` tokens of each) are tokenized with the default base model's tokenizer
(SmolLM2, vocabulary 49152) until a budget of base tokens is reached. Each file's token stream is cut into windows of ``context`` base tokens (the last one
may be shorter) and every window is compressed independently, as one training sequence or one prompt
would be, with ``LZWCodec(49152, C, M, disabled_ids=<every special/added token>)``.

Reported per domain, context, codebook size C and merge size M:

* ``compression`` = base tokens / codes (higher is better; 1.00 = no gain);
* ``reduction`` = 1 - codes / base tokens, in percent (the paper's Table 9 metric);
* bytes per token, before and after (the paper's Table 2 metric, UTF-8 bytes of the text).

Run: ``python -m benchmarks.compression [--tokens 200000] [--json out.json] [--plot benchmarks/compression.png]``.
Missing corpus sources are fetched (Debian packages, see zip2zip.corpora) or the domain is skipped with a
message saying what is missing.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from zip2zip.corpora.debian import CorpusUnavailableError
from zip2zip.corpora.store import ensure_sources, languages, load_files
from zip2zip.model.lzw import LZWCodec
from zip2zip.recipe import DOMAINS

HERE = Path(__file__).resolve().parent
# The per-language table uses the released Phi-3.5 recipe's codec settings (and the longest context).
HEADLINE_C = 2048
HEADLINE_M = 4


@dataclass
class DomainStreams:
    """Tokenized files of one domain, cut to the token budget."""

    domain: str
    files: int
    bytes: int
    streams: list[list[int]]

    @property
    def tokens(self) -> int:
        return sum(len(stream) for stream in self.streams)


def tokenize_domain(
    tokenizer, domain: str, budget: int, split: str, per_file: int, lang: str | None = None
) -> DomainStreams:
    """Files in the corpus's fixed hashed order, each cut to its first ``per_file`` base tokens, until
    ``budget`` base tokens (so a domain with a few huge files, like the PARI manual, is still sampled
    across files).

    Bytes are counted exactly for the tokens kept (a cut file's kept tokens are decoded back).
    """
    streams: list[list[int]] = []
    total_bytes = 0
    total = 0
    for text in load_files(domain, split, lang=lang):
        ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        keep = min(per_file, budget - total)
        if len(ids) > keep:
            ids = ids[:keep]
            text = tokenizer.decode(ids)
        streams.append(ids)
        total_bytes += len(text.encode("utf-8"))
        total += len(ids)
        if total >= budget:
            break
    return DomainStreams(lang or domain, len(streams), total_bytes, streams)


def compressed_length(codec: LZWCodec, streams: list[list[int]], context: int) -> int:
    """Total codes when every window of ``context`` base tokens of every stream is encoded on its own."""
    return sum(
        len(codec.encode(stream[start : start + context]))
        for stream in streams
        for start in range(0, len(stream), context)
    )


def run(args: argparse.Namespace) -> dict:
    from zip2zip.bundled.base import DefaultModelUnavailableError, load_default_tokenizer

    try:
        tokenizer = load_default_tokenizer()
    except DefaultModelUnavailableError as error:
        sys.exit(f"compression benchmark: {error}")
    base_vocab = len(tokenizer)
    disabled = sorted(set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values()))

    corpora: list[DomainStreams] = []
    for domain in args.domains:
        try:
            ensure_sources(domain)
        except CorpusUnavailableError as error:
            print(f"skipping domain {domain!r}: {error}", file=sys.stderr)
            continue
        corpora.append(tokenize_domain(tokenizer, domain, args.tokens, args.split, args.file_tokens))

    configs = list(itertools.product(args.contexts, args.codebook_sizes, args.subtokens))
    results = []
    with tqdm(total=len(corpora) * len(configs), desc="compressing", unit="config") as bar:
        for corpus in corpora:
            for context, size, subtokens in configs:
                codec = LZWCodec(base_vocab, size, subtokens, disabled_ids=disabled)
                codes = compressed_length(codec, corpus.streams, context)
                results.append(
                    {
                        "domain": corpus.domain,
                        "context": context,
                        "max_codebook_size": size,
                        "max_subtokens": subtokens,
                        "base_tokens": corpus.tokens,
                        "codes": codes,
                        "bytes": corpus.bytes,
                        "compression": corpus.tokens / codes,
                    }
                )
                bar.update()
    by_language = []
    if args.language_tokens and {"prose", "multilingual"} & {c.domain for c in corpora}:
        context, size, subtokens = max(args.contexts), HEADLINE_C, HEADLINE_M
        codec = LZWCodec(base_vocab, size, subtokens, disabled_ids=disabled)
        langs = [("prose", lang) for lang in languages("prose")] if "prose" in args.domains else []
        if "multilingual" in args.domains:
            langs += [("multilingual", lang) for lang in languages("multilingual")]
        for domain, lang in tqdm(langs, desc="languages", unit="language"):
            corpus = tokenize_domain(
                tokenizer, domain, args.language_tokens, args.split, args.file_tokens, lang
            )
            codes = compressed_length(codec, corpus.streams, context)
            by_language.append(
                {
                    "lang": lang,
                    "files": corpus.files,
                    "base_tokens": corpus.tokens,
                    "codes": codes,
                    "bytes": corpus.bytes,
                    "context": context,
                    "max_codebook_size": size,
                    "max_subtokens": subtokens,
                }
            )
    return {
        "tokenizer": "SmolLM2-135M-Instruct (vocabulary 49152)",
        "split": args.split,
        "token_budget": args.tokens,
        "file_token_cap": args.file_tokens,
        "disabled_ids": len(disabled),
        "domains": [
            {"domain": c.domain, "files": c.files, "base_tokens": c.tokens, "bytes": c.bytes} for c in corpora
        ],
        "results": results,
        "by_language": by_language,
    }


def markdown(report: dict) -> str:
    """The tables of the README: one per context; rows domain x C, columns M."""
    lines = ["| domain | files | base tokens | bytes/token |", "|---|---:|---:|---:|"]
    for d in report["domains"]:
        lines.append(
            f"| {d['domain']} | {d['files']} | {d['base_tokens']:,} | {d['bytes'] / d['base_tokens']:.2f} |"
        )
    results = report["results"]
    subtokens = sorted({r["max_subtokens"] for r in results})
    for context in sorted({r["context"] for r in results}):
        lines += [
            "",
            f"Context {context} base tokens: compression (base tokens / codes), reduction in parentheses",
            "",
        ]
        lines.append("| domain | C | " + " | ".join(f"M={m}" for m in subtokens) + " |")
        lines.append("|---|---:|" + "---:|" * len(subtokens))
        for d in report["domains"]:
            for size in sorted({r["max_codebook_size"] for r in results}):
                row = {
                    r["max_subtokens"]: r
                    for r in results
                    if (r["domain"], r["context"], r["max_codebook_size"]) == (d["domain"], context, size)
                }
                cells = [
                    f"{row[m]['compression']:.3f} ({100 * (1 - row[m]['codes'] / row[m]['base_tokens']):.1f}%)"
                    for m in subtokens
                ]
                lines.append(f"| {d['domain']} | {size} | " + " | ".join(cells) + " |")
    if report.get("by_language"):
        first = report["by_language"][0]
        lines += [
            "",
            f"Per language (context {first['context']}, C={first['max_codebook_size']}, "
            f"M={first['max_subtokens']}; en-US is the prose domain)",
            "",
            "| language | files | base tokens | bytes/token | with zip2zip | compression | reduction |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in report["by_language"]:
            lines.append(
                f"| {r['lang']} | {r['files']} | {r['base_tokens']:,} | {r['bytes'] / r['base_tokens']:.2f} "
                f"| {r['bytes'] / r['codes']:.2f} | {r['base_tokens'] / r['codes']:.3f} "
                f"| {100 * (1 - r['codes'] / r['base_tokens']):.1f}% |"
            )
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    """One panel per domain: compression against M, a line per codebook size and context."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    domains = [d["domain"] for d in report["domains"]]
    results = report["results"]
    fig, axes = plt.subplots(1, len(domains), figsize=(4 * len(domains), 3.6), sharey=True, squeeze=False)
    sizes = sorted({r["max_codebook_size"] for r in results})
    colours = dict(zip(sizes, ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]))
    # Larger codebooks draw first and wider, so a curve that coincides with a smaller C stays visible.
    widths = {size: 1.5 + 2.0 * rank for rank, size in enumerate(sorted(sizes))}
    longest = max(r["context"] for r in results)
    handles = []
    for ax, domain in zip(axes[0], domains):
        for size, context in itertools.product(
            sorted(sizes, reverse=True), sorted({r["context"] for r in results})
        ):
            points = sorted(
                (r["max_subtokens"], r["compression"])
                for r in results
                if (r["domain"], r["context"], r["max_codebook_size"]) == (domain, context, size)
            )
            (line,) = ax.plot(
                [m for m, _ in points],
                [c for _, c in points],
                marker="o",
                markersize=2 + 1.5 * widths[size],
                linewidth=widths[size],
                alpha=0.85,
                color=colours[size],
                linestyle="-" if context == longest else "--",
                label=f"C={size}, context {context}",
            )
            if ax is axes[0][0]:
                handles.append(line)
        ax.set_title(domain)
        ax.set_xlabel("max_subtokens M")
        ax.set_xticks(sorted({r["max_subtokens"] for r in results}))
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("base tokens / codes")
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(
        "LZW compression of SmolLM2 token streams (each window compressed on its own; "
        "a window never fills more than ~context codebook entries, so large C coincide)",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", nargs="+", default=list(DOMAINS), choices=DOMAINS)
    parser.add_argument("--tokens", type=int, default=200_000, help="base tokens per domain")
    parser.add_argument("--file-tokens", type=int, default=16384, help="base tokens kept per file")
    parser.add_argument(
        "--language-tokens", type=int, default=50_000, help="base tokens per language (0: no language table)"
    )
    parser.add_argument("--split", default="all", choices=("train", "heldout", "all"))
    parser.add_argument("--contexts", nargs="+", type=int, default=[1024, 2048])
    parser.add_argument("--codebook-sizes", nargs="+", type=int, default=[512, 2048, 8192])
    parser.add_argument("--subtokens", nargs="+", type=int, default=[2, 3, 4, 5])
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--plot", type=Path, default=HERE / "compression.png")
    args = parser.parse_args()

    report = run(args)
    if not report["results"]:
        sys.exit("compression benchmark: no domain could be loaded (see the messages above)")
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.plot)
    print(f"\nplot written to {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
