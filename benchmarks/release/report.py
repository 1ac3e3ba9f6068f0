"""RESULTS.md: the release report rendered as Markdown from the raw report."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from benchmarks.long_context import quality_table
from benchmarks.release.bars import (
    bpb_domains,
    pooled_long_context_ratio,
    release_bars,
    repeated_shares,
    same_work_ratios,
    verdict,
)
from benchmarks.release.curves import at_equal_tokens, heldout_domains
from benchmarks.release.paper import (
    PAPER_BYTE_PPL,
    PAPER_BYTES_PER_TOKEN,
    PAPER_DECODE_GAIN,
    PAPER_MC,
    PAPER_REDUCTION,
    byte_ppl_ratio,
)
from benchmarks.release.settings import (
    BAR_TOLERANCE,
    BPB_BARS,
    CONTROL_COMMAND,
    MC_DOMAINS,
    MC_TASKS,
    MIN_FIT_POINTS,
    REPEATED_NGRAM,
)


def render(report: dict[str, Any], out: Path, assets: Path) -> str:
    """RESULTS.md from the raw report (also what ``results.json`` holds)."""
    run, s = report["run"], report["run"]["settings"]
    link = lambda name: os.path.relpath(assets / name, out.parent)  # noqa: E731
    lines = ["# zip2zip release results", ""]
    if s["quick"]:
        lines += ["> **Smoke run (`--quick`)**: sizes far too small for these numbers to mean anything.", ""]
    lines += [
        f"Regenerated with `{run['command']}` on {run['date']} (commit {run['commit']}), "
        f"{report['seconds'] / 60:.1f} minutes. Everything below was measured in that one run, side by side, "
        f"on CPU with {run['threads']} torch thread(s).",
        "",
        "| | |",
        "|---|---|",
        f"| zip2zip model | `{run['model']}` ({', '.join(f'{k}={v}' for k, v in run['model_settings'].items())})"
        + _scale_words(run.get("delta_scale"))
        + " |",
        f"| base model | {run['base']} |",
        f"| machine | {run['cpu']}; load average at start {_load(run['load_average'])} |",
        f"| versions | {', '.join(f'{k} {v}' for k, v in run['versions'].items())} |",
        f"| bits per byte | first {s['eval_chars']:,} characters of each held-out domain, windows of "
        f"{s['max_length']} positions |",
        f"| generation | {s['prompts']} prompt(s) of {s['prompt_tokens']} base tokens per domain, "
        f"{s['new_tokens']} new base tokens, greedy, batch 1, {s['repeats']} repeat(s), prompt lookup "
        f"{s['pld_tokens']} tokens |",
        f"| multiple choice | {s['mc_items']} items per domain, {s['mc_context']} units of context, seed {s['seed']} |",
        f"| long context | {_long_context_cell(report)} |",
        f"| control (M = 1) | {_control_cell(run.get('control'))} |",
        f"| training run | {_run_cell(report.get('training_run'))} |",
        f"| raw data | [`results.json`]({link('results.json')}), items [`next_line.jsonl`]({link('next_line.jsonl')}) |",
        "",
    ]
    lines += _summary(report)
    lines += _bpb_section(report, link)
    lines += _generation_section(report, link)
    lines += _mc_section(report, link)
    lines += _curves_section(report, link)
    lines += _long_context_section(report, link)
    return "\n".join(lines) + "\n"


def _scale_words(scale: float | None) -> str:
    if scale is None or scale == 1.0:
        return ""
    return f"; its low-rank delta applied at scale {scale} (`delta_scale`, see benchmarks/README.md)"


def _control_cell(control: dict[str, Any] | None) -> str:
    if not control:
        return "not measured"
    settings = ", ".join(f"{k}={v}" for k, v in control["model_settings"].items())
    carried = f"; its scores carried from {control['carried_from']}" if control.get("carried_from") else ""
    return f"`{control['folder']}` ({settings}){carried}"


def _long_context_cell(report: dict[str, Any]) -> str:
    if not report.get("long_context"):
        return "not measured (`--no-long-context`, or a report from before section 5)"
    s = report["run"]["settings"]
    windows = ", ".join(f"{w:,}" for w in s["long_windows"])
    return (
        f"windows of {windows} positions on {s['long_documents']} document(s) of up to {s['long_chars']:,} "
        f"characters per domain; {s['long_new_tokens']} new base tokens after a {s['long_prompt_tokens']:,}-token "
        f"code prompt, {s['long_repeats']} repeat(s); {s['long_endings']} code file(s) cut after about "
        f"{s['long_ending_chars']:,} characters"
    )


def _run_cell(curves: dict[str, Any] | None) -> str:
    if not curves:
        return "not read (`--run FOLDER`)"
    return f"`{curves['folder']}`, read {curves['read']}, {len(curves['heldout'])} held-out evaluations"


def _load(value: Any) -> str:
    return " / ".join(f"{v:.2f}" for v in value) if value else "unknown"


def _summary(report: dict[str, Any]) -> list[str]:
    bars = release_bars(report)
    judged = [bar for bar in bars if bar.met is not None]
    lines = ["## Bars", "", "| bar | measured | | missed by |", "|---|---:|---|---:|"]
    lines += [f"| {bar.name} | {bar.measured} | {verdict(bar.met)} | {bar.missed_by} |" for bar in bars]
    missed = [bar for bar in judged if not bar.met]
    lines += [
        "",
        f"{len(judged) - len(missed)} of {len(judged)} measured bars met"
        + (f" ({len(bars) - len(judged)} not measured in this run)" if len(judged) < len(bars) else "")
        + (
            "; missed: " + "; ".join(f"{bar.name} by {bar.missed_by} ({bar.measured})" for bar in missed)
            if missed
            else ""
        )
        + ".",
        "",
    ]
    return lines


def _bpb_table(report: dict[str, Any]) -> list[str]:
    """Table 1: base, control (when measured) and zip2zip bits per byte, the ratios and the per-domain bar."""
    compared = report["bits_per_byte"]["compared"]
    control = report["bits_per_byte"].get("control")
    head = "| domain | bytes | bits/byte base |"
    rule = "|---|---:|---:|"
    if control:
        head += " bits/byte control (M = 1) |"
        rule += "---:|"
    head += " bits/byte zip2zip | zip2zip / base | bar |"
    rule += "---:|---:|---|"
    if control:
        head += " zip2zip / control |"
        rule += "---:|"
    head += " base tokens per code | fewer positions | hypertokens |"
    rule += "---:|---:|---:|"
    lines = [head, rule]
    for domain in [*bpb_domains(report), "overall"]:
        entry = compared["overall"] if domain == "overall" else compared["domains"][domain]
        z, b = entry["zip2zip"], entry["base"]
        ratio = z["bits_per_byte"] / b["bits_per_byte"]
        limit = BPB_BARS.get(domain)
        bar = f"{verdict(ratio <= limit + BAR_TOLERANCE)} (<= {limit:.2f}x)" if limit else ""
        cells = [domain, f"{z['bytes']:,}", f"{b['bits_per_byte']:.4f}"]
        c = None
        if control:
            c = (control["overall"] if domain == "overall" else control["domains"].get(domain, {})).get(
                "zip2zip"
            )
            cells.append(f"{c['bits_per_byte']:.4f}" if c else "")
        cells += [f"{z['bits_per_byte']:.4f}", f"{ratio:.3f}x", bar]
        if control:
            cells.append(f"{z['bits_per_byte'] / c['bits_per_byte']:.3f}x" if c else "")
        cells += [
            f"{z['compression']:.3f}",
            f"{1 - z['positions'] / b['positions']:.1%}",
            f"{z['hypertokens'] / max(1, z['codes']):.1%}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _control_note(report: dict[str, Any]) -> str:
    """One line on the no-compression control: what it is and the run's, or how to produce it."""
    control = report["run"].get("control")
    if report["bits_per_byte"].get("control") and control:
        return (
            f"The control (`{control['folder']}`, max_subtokens=1) is the same recipe and tokens without "
            "hypertokens: zip2zip / control is the quality the compression costs beyond fine-tuning itself."
        )
    return (
        "The no-compression control (the same recipe and tokens with max_subtokens=1) was not measured in this "
        f"run: train it with `{CONTROL_COMMAND}` and pass `--control RUN`."
    )


def _bpb_section(report: dict[str, Any], link: Any) -> list[str]:
    compared = report["bits_per_byte"]["compared"]
    whole = report["bits_per_byte"]["heldout_compression"]
    lines = [
        "## 1. Bits per byte and input compression per held-out domain",
        "",
        "Strict bits per byte (`zip2zip.evaluation.scoring.compare_on_domains`): the canonical LZW code stream's "
        "likelihood, an upper bound for zip2zip (any other spelling of the same text adds probability); base "
        f"and zip2zip read the same bytes in the same windows of {compared['max_length']} positions, a fresh "
        "codebook per window. Compression = base tokens per code; fewer positions = 1 - zip2zip positions / "
        "base positions (one prefix token per window included).",
        "",
    ]
    lines += _bpb_table(report)
    lines += ["", _control_note(report)]
    lines += [
        "",
        f"![bits per byte per domain]({link('bpb.png')})",
        "",
        "Input compression on each domain's **whole** held-out split (LZW only, no model; windows of "
        f"{compared['max_length'] - 1} base tokens), next to the paper's numbers. **The paper's numbers are for "
        "other, larger tokenizers (128K-256K vocabularies against SmolLM2's 49K) on other data (The Stack v2, "
        "NuminaMath, FineWeb-edu, FineWeb-2) with unstated M, C and context**; our prose is compared with its "
        "web column.",
        "",
        "| domain | texts | base tokens | base tokens per code | reduction | bytes/token -> bytes/code | "
        "paper reduction (Table 9, four tokenizers) | paper bytes/token (Table 2, Llama-3-128K) |",
        "|---|---:|---:|---:|---:|---|---|---|",
    ]
    for domain in [d for d in bpb_domains(report) if d in whole]:
        w = whole[domain]
        paper = PAPER_REDUCTION.get(domain)
        bpt = PAPER_BYTES_PER_TOKEN.get(domain)
        lines.append(
            f"| {domain} | {w['texts']} | {w['base_tokens']:,} | {w['compression']:.3f} | "
            f"{1 - w['codes'] / max(1, w['base_tokens']):.1%} | {w['bytes'] / max(1, w['base_tokens']):.2f} -> "
            f"{w['bytes_per_code']:.2f} | {f'{min(paper):.1f}-{max(paper):.1f}%' if paper else 'none'} | "
            f"{f'{bpt[0]} -> {bpt[1]}' if bpt else 'none'} |"
        )
    ratios = {
        model: {corpus: byte_ppl_ratio(pair) for corpus, pair in corpora.items()}
        for model, corpora in PAPER_BYTE_PPL.items()
    }
    lines += [
        "",
        "For the quality bar, the paper's own zip2zip models (Table 3, byte perplexity with a 1024-token "
        "window, converted to a bits-per-byte ratio as log2 PPL zip2zip / log2 PPL base) sit at: "
        + "; ".join(
            f"{model} " + ", ".join(f"{corpus} {r:.3f}x" for corpus, r in corpora.items())
            for model, corpora in ratios.items()
        )
        + ". Those are Phi models (3.8B and 14B) continually pretrained on about 0.1-0.26B tokens, "
        "not SmolLM2-135M.",
        "",
    ]
    return lines


def _generation_section(report: dict[str, Any], link: Any) -> list[str]:
    s = report["run"]["settings"]
    rows = report["generation"]["rows"]
    lines = [
        "## 2. Generation (greedy, batch 1, CPU)",
        "",
        f"Continuations of {s['prompts']} held-out prompt(s) per domain of {s['prompt_tokens']} base tokens, "
        f"{s['new_tokens']} new base tokens each (`benchmarks/generation.py`'s `measure`): the base model, the "
        f"base model with prompt-lookup decoding (`prompt_lookup_num_tokens={s['pld_tokens']}`, lossless under "
        "greedy decoding) and zip2zip on the LZW codes of the same base-token prompt "
        "(`max_new_base_tokens`). End of sequence is suppressed (`min_new_tokens`) so that every "
        "configuration writes its full budget; bytes/s are UTF-8 bytes of the text actually generated over the "
        "wall time of the whole `generate` call (prefill included), best of the repeats. Decoding steps are "
        "forward calls after the prefill, summed over prompts; ms/step is the median time per loop iteration. "
        "Output compression is zip2zip's own: base tokens per generated code (`model.last_generation_stats`); "
        "beside it, for every configuration, the base tokens per code the LZW encoder writes for the same text "
        "after the same prompt: what the text itself allows (a model that spells out entries of its codebook "
        "writes below it; text that repeats its prompt allows more). "
        f"Repeated {REPEATED_NGRAM}-grams: the share of the continuation's base-token {REPEATED_NGRAM}-grams that "
        "already occurred earlier in it (mean over prompts; greedy output that loops scores high).",
        "",
        "| domain | config | decoding steps | ms/step (median) | bytes/s | vs base bytes/s | output base tokens "
        f"per code | its text, LZW-encoded | hypertokens | repeated {REPEATED_NGRAM}-grams |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    results = report["generation"]["results"]
    names = {
        "base": "base",
        "pld": "base + prompt lookup",
        "zip2zip": "zip2zip",
        "lookup": "zip2zip + lookup",
    }
    for row in rows:
        shares = repeated_shares(results.get(row["domain"], {}))
        for config in [c for c in names if c in row]:
            repeats = f"{shares[config]:.1%}" if config in shares else ""
            v = row[config]
            name = names[config]
            speed = v["bytes_per_s"] / row["base"]["bytes_per_s"]
            compression = f"{v['compression']:.3f}" if "compression" in v else ""
            hyper = f"{v['hypertoken_rate']:.1%}" if "hypertoken_rate" in v else ""
            encoded = f"{v['encoded_compression']:.3f}" if "encoded_compression" in v else ""
            lines.append(
                f"| {row['domain']} | {name} | {v['steps']} | {v['ms_per_step']:.1f} | {v['bytes_per_s']:.1f} | "
                f"{speed:.3f}x | {compression} | {encoded} | {hyper} | {repeats} |"
            )
    mismatches = report["generation"]["pld_mismatches"]
    same_work = same_work_ratios(report["generation"]["results"])
    files = report["generation"].get("file_continuations")
    if files:
        lines += [
            "",
            "What the held-out files themselves write after the same prompts (their next base tokens, up to "
            f"{s['new_tokens']} per prompt), LZW-encoded after the prompt, for comparison with the column above: "
            + "; ".join(f"{domain} {v['compression']:.3f}" for domain, v in files.items())
            + " base tokens per code.",
        ]
    lines += [
        "",
        "The models write different text, and bytes/s also counts how many bytes that text has per base token. "
        "For the same number of new base tokens, zip2zip / base: "
        + "; ".join(
            f"{domain}: time {r['time']:.3f}x, bytes written {r['bytes']:.3f}x"
            for domain, r in same_work.items()
        )
        + ".",
        "",
        "Per-step time zip2zip / base: "
        + ", ".join(f"{row['domain']} {row['ratio']:.3f}" for row in rows)
        + ". Prompt lookup "
        + (
            "reproduced the base output on every prompt."
            if not mismatches
            else f"differed from base on {mismatches}."
        ),
        "",
        f"![generation]({link('generation.png')})",
        "",
        "For scale, the paper's decode throughput against its base models (Table 5, relative tokens/s, batch "
        "and prompt domain unstated): "
        + "; ".join(f"{k}: {v}" for k, v in PAPER_DECODE_GAIN.items())
        + ". The zip2zip++ models report a generation compression of 1.25-1.26 base tokens per code (about 1.4 "
        "called healthy in their evaluation notes). Other, larger models on GPUs and an M1.",
        "",
        "<details><summary>First characters of the first continuation per domain</summary>",
        "",
    ]
    results = report["generation"]["results"]
    for domain in results:
        for config in ("base", "zip2zip"):
            text = results[domain][config][0]["text"][:300]
            lines += [f"{domain}, {config}:", "", "```", text.replace("```", "'''"), "```", ""]
    lines += ["</details>", ""]
    return lines


def _mc_section(report: dict[str, Any], link: Any) -> list[str]:
    s = report["run"]["settings"]
    mc = report["multiple_choice"]
    lines = [
        "## 3. Multiple choice through lm-eval: next line (code) and next sentence (prose)",
        "",
        f"Which of four candidates comes next after {s['mc_context']} lines (code) or sentences (prose) of a "
        "held-out document? The distractors are lines / sentences of the closest lengths from other held-out "
        f"documents of the domain (seed {s['seed']}); tasks `{MC_TASKS['code']}` and `{MC_TASKS['prose']}` in "
        "`benchmarks/tasks/`, items in "
        f"[`next_line.jsonl`]({link('next_line.jsonl')}), zero-shot, chance = 25%. acc_norm divides each "
        "choice's log-likelihood by its length in bytes. `base (zip2zip class)` is the base model scored by "
        "the same lm-eval class as zip2zip (same prefix token and tokenization), `base (hf)` by lm-eval's own "
        "`hf` model.",
        "",
        "| task | model | items | acc | acc_norm |",
        "|---|---|---:|---:|---:|",
    ]
    for domain in MC_DOMAINS:
        task = MC_TASKS[domain]
        for name, run in mc.items():
            t = run["tasks"][task]
            lines.append(
                f"| {task} | {name} | {t['items']} | {_pct(t['acc'], t['acc_stderr'])} | "
                f"{_pct(t['acc_norm'], t['acc_norm_stderr'])} |"
            )
    lines += [
        "",
        f"![multiple choice]({link('next_line.png')})",
        "",
        "For scale, the paper's Phi-3.5-4B (Table 3, 2-shot) moves by "
        + ", ".join(f"{k} {b:.2f} -> {z:.2f}" for k, (b, z) in PAPER_MC.items())
        + " from base to zip2zip (standard benchmarks, a 3.8B model).",
        "",
    ]
    return lines


def _curves_section(report: dict[str, Any], link: Any) -> list[str]:
    """Section 4: the long run's held-out curve per domain, the table of its points and the fit, honestly."""
    lines = ["## 4. The long run's curves", ""]
    curves = report.get("training_run")
    if not curves:
        return [
            *lines,
            "The training run's curves were not read in this run: pass its output folder with `--run FOLDER` "
            "(it works with `--render-only` too).",
            "",
        ]
    heldout = curves["heldout"]
    domains = heldout_domains(heldout)
    lines += [
        f"Read from `{curves['folder']}` on {curves['read']}: {len(heldout)} held-out evaluation(s) "
        f"(`heldout.json`) and {len(curves['train'])} logged training batches (the newest checkpoint, "
        f"`{curves['checkpoint']}`). The held-out numbers are the run's own: strict bits per byte on its own "
        "held-out texts and windows, not section 1's, so they show the trend, not the bars.",
        "",
        *_warm_start_lines(curves.get("warm_start")),
        "| step | base tokens seen | pooled | " + " | ".join(domains) + " |",
        "|---:|---:|---:|" + "---:|" * len(domains),
    ]
    for entry in heldout:
        cells = [f"{entry['heldout_bpb_' + d]:.4f}" if "heldout_bpb_" + d in entry else "" for d in domains]
        lines.append(
            f"| {entry.get('step', '')} | {entry['base_tokens_seen']:,} | {entry['heldout_bpb']:.4f} | "
            + " | ".join(cells)
            + " |"
        )
    lines += ["", fit_sentence(curves["fit"], heldout), ""]
    lines += _control_curve_lines(report.get("control_run"), heldout, domains)
    lines += [f"![training curves]({link('training_curves.png')})", ""]
    return lines


def _warm_start_lines(record: dict[str, Any] | None) -> list[str]:
    """What a continued run started from; its steps are its own, its base tokens count the earlier ones."""
    if not record:
        return []
    seen = record.get("base_tokens_seen")
    before = (
        f"{seen:,} base tokens, {record.get('global_step')} steps"
        if seen
        else "an unrecorded number of tokens"
    )
    changes = (
        ", ".join(f"`{k}={v}`" for k, v in (record.get("changes") or {}).items()) or "no setting changed"
    )
    return [
        f"The run continued from a trained model (`--init-from {record.get('init_from')}`: {before}, trained with "
        f"`{record.get('command') or 'an unrecorded command'}`), with {changes}, on a new learning-rate schedule. "
        "Steps count from the continuation's start; base tokens seen include the earlier run's, so the curves "
        "sit where the weights' training was. The earlier run's own curves are in `first_run_curves.json` beside "
        "this report's plots when it was measured before.",
        "",
    ]


def _control_curve_lines(
    control: dict[str, Any] | None, heldout: list[dict[str, Any]], domains: list[str]
) -> list[str]:
    """The control's held-out points beside the long run's at the same base tokens (its curve interpolated)."""
    if not control:
        return []
    points = control["heldout"]
    last = points[-1].get("step", "?")
    planned = control.get("planned_steps")
    if planned is None:
        progress = f"last point at step {last}; its planned length was not found"
    elif isinstance(last, int) and last >= planned:
        progress = f"finished, {planned} steps"
    else:
        progress = f"at step {last} of {planned}, still training when read"
    keys = ["heldout_bpb"] + [f"heldout_bpb_{d}" for d in domains]
    lines = [
        "### Beside the no-compression control (M = 1)",
        "",
        f"The control's own held-out curve, read from `{control['folder']}` on {control['read']} ({progress}): "
        "the same recipe, texts and base tokens per step with `max_subtokens=1`, scored on the same held-out "
        "texts. Each cell is zip2zip / control at the control's base tokens seen (zip2zip's curve interpolated "
        "between its points), so the ratio is what compression costs at equal training; below 1 it gains.",
        "",
        "| control step | base tokens seen | pooled | " + " | ".join(domains) + " |",
        "|---:|---:|---:|" + "---:|" * len(domains),
    ]
    for entry in points:
        cells = []
        for key in keys:
            ours = at_equal_tokens(heldout, entry["base_tokens_seen"], key)
            theirs = entry.get(key)
            cells.append(
                f"{ours / theirs:.3f}x ({ours:.3f} / {theirs:.3f})" if ours is not None and theirs else ""
            )
        lines.append(
            f"| {entry.get('step', '')} | {entry['base_tokens_seen']:,} | " + " | ".join(cells) + " |"
        )
    return [*lines, ""]


def _long_context_section(report: dict[str, Any], link: Any) -> list[str]:
    """Section 5: bits per byte by window, the continuation and KV cache after a long prompt, file endings."""
    lines = ["## 5. Long context", ""]
    long = report.get("long_context")
    if not long:
        return [
            *lines,
            "Not measured in this run: the measuring run's `--long-context` (on by default) adds it. "
            "`python -m benchmarks.long_context` measures more of it (prefill and step time by prompt length, the "
            "codebook's fill).",
            "",
        ]
    quality = long["quality"]
    windows = sorted({int(w) for entry in quality.values() for w in entry["windows"]})
    documents = "; ".join(
        f"{domain} {' + '.join(f'{c:,}' for c in entry['characters'])} characters"
        for domain, entry in quality.items()
    )
    lines += [
        "Strict bits per byte in windows of "
        + ", ".join(f"{w:,}" for w in windows)
        + " positions on whole held-out documents, the longest ones (`benchmarks/long_context.py`'s "
        f"`measure_quality`; {documents}): every model reads the same bytes at every window, a fresh codebook per "
        "window. An LZW codebook keeps learning along a window, so compression (base tokens per code) grows with "
        "it; the bars ask that zip2zip's quality keep pace with the base's.",
        "",
        *quality_table(quality).splitlines(),
        "",
    ]
    pooled = []
    for key in ("base", "control"):
        ratios = {w: pooled_long_context_ratio(report, w, key) for w in windows}
        cells = [f"{ratio:.3f}x at {w:,}" for w, ratio in ratios.items() if ratio is not None]
        if cells:
            pooled.append(f"zip2zip / {key} {', '.join(cells)}")
    lines += ["Pooled over the domains (byte-weighted): " + "; ".join(pooled) + ".", ""]
    control = report["run"].get("control") or {}
    has_control = any("control" in s for entry in quality.values() for s in entry["windows"].values())
    if control.get("carried_from"):
        lines += [
            f"The control's scores are carried from {control['carried_from']} wherever that run scored the same "
            "documents in the same windows; other cells are empty.",
            "",
        ]
    elif not has_control:
        lines += ["The no-compression control was not scored here (`--control`).", ""]
    lines += [f"![long context]({link('long_context.png')})", ""]
    lines += _continuation_lines(long)
    lines += _endings_lines(long["endings"], long["continuation"]["new_base_tokens"])
    return lines


def _continuation_lines(long: dict[str, Any]) -> list[str]:
    """The time for new base tokens after the long code prompt and the KV cache it leaves, side by side."""
    c, kv = long["continuation"], long["kv_cache"]
    steps = f" ({c['zip2zip_steps']} steps)" if c.get("zip2zip_steps") is not None else ""
    return [
        f"### After a {c['prompt_base_tokens']:,}-token code prompt",
        "",
        f"Greedy, batch 1, end of sequence suppressed: the time for {c['new_base_tokens']} new base tokens "
        "(the whole `generate` call, prefill included, median of the repeats; zip2zip reads the prompt's LZW "
        "codes and stops at `max_new_base_tokens`), and the bytes of the KV cache after one forward pass over the "
        "prompt (`benchmarks/long_context.py`'s `continuation_time` and `kv_cache_bytes`).",
        "",
        "| | base | zip2zip | zip2zip / base |",
        "|---|---:|---:|---:|",
        f"| prompt positions | {kv['prompt_base_tokens']:,} | {kv['prompt_codes']:,} | "
        f"{kv['prompt_codes'] / kv['prompt_base_tokens']:.3f}x |",
        f"| time for {c['new_base_tokens']} new base tokens | {c['base_seconds']:.2f} s | "
        f"{c['zip2zip_seconds']:.2f} s{steps} | {c['ratio']:.3f}x |",
        f"| KV cache after the prompt | {kv['base'] / 2**20:.1f} MiB | {kv['zip2zip'] / 2**20:.1f} MiB | "
        f"{kv['zip2zip'] / kv['base']:.3f}x |",
        "",
    ]


def _endings_lines(endings: dict[str, Any], new: int) -> list[str]:
    """Greedy continuations of code files cut mid-file: which model writes its ``new`` base tokens, which ends
    the file."""
    rows = endings["rows"]
    lines = [
        "### Code files cut mid-file",
        "",
        "Greedy continuations of held-out code files cut at a line end (`benchmarks/long_context.py`'s "
        "`measure_endings`; end of sequence allowed). Cut there, a prompt ends with a bare newline token, which "
        "inside a whole file the tokenizer merges with the next line's indentation: a model that never saw one "
        "before an indented line reads it as the end of the file and writes an end-of-sequence token where the "
        "file goes on.",
        "",
        "| prompt | characters | base: new base tokens | base: ended | zip2zip: new base tokens | zip2zip: ended "
        "| P(end of sequence next): base / zip2zip |",
        "|---:|---:|---:|---|---:|---|---:|",
    ]
    yes = {True: "yes", False: "no"}
    for k, row in enumerate(rows, 1):
        b, z = row["base"], row["zip2zip"]
        # Results from before the probability was measured have none.
        p_eos = f"{b['p_eos']:.3f} / {z['p_eos']:.3f}" if "p_eos" in z else "not measured"
        lines.append(
            f"| {k} | {row['prompt_chars']:,} | {b['base_tokens']} | {yes[b['ended']]} | {z['base_tokens']} | "
            f"{yes[z['ended']]} | {p_eos} |"
        )
    lines += [
        "",
        f"Full budget ({new} new base tokens) without end-of-sequence: base {endings['base_full']} of "
        f"{endings['prompts']}, zip2zip {endings['zip2zip_full']} of {endings['prompts']}.",
        "",
    ]
    return lines


def fit_sentence(fit: dict[str, Any] | None, heldout: list[dict[str, Any]]) -> str:
    """What the fit of the pooled held-out curve says, with its number of points and its limits, or why none."""
    if fit is None:
        usable = sum(1 for e in heldout if e["base_tokens_seen"] > 0)
        return (
            f"No fit: {usable} held-out point(s) after the untrained start, fewer than the {MIN_FIT_POINTS} a "
            "three-parameter curve needs; more evaluations of the run will allow one."
        )
    seen = fit["tokens_seen"]
    last = heldout[-1]["heldout_bpb"]
    text = (
        f"Fit of the pooled held-out curve over {fit['points']} points ({fit['first_tokens']:,.0f} to "
        f"{seen:,.0f} base tokens; the untrained start left out): bits per byte = {fit['a']:.4f} + "
        f"{fit['b']:.4f} * (tokens / 1M)^-{fit['c']:.3f} ({fit['method']}; RMS residual {fit['rms_residual']:.4f}). "
        f"Extended beyond the data it gives {fit['extrapolated']['2x']:.4f} at 2x the tokens seen "
        f"({2 * seen / 1e6:.2f}M) and {fit['extrapolated']['4x']:.4f} at 4x ({4 * seen / 1e6:.2f}M), against "
        f"{last:.4f} measured last, with an asymptote of {fit['a']:.4f}. That is a three-parameter curve "
        f"through {fit['points']} noisy points: a guess at the direction, not a measurement."
    )
    if fit["at_bound"]:
        text += " The exponent sits at the edge of its range, so the data do not pin it down."
    return text


def _pct(value: float, stderr: float | None) -> str:
    if stderr is None or (isinstance(stderr, float) and math.isnan(stderr)) or isinstance(stderr, str):
        return f"{value:.1%}"
    return f"{value:.1%} ± {stderr:.1%}"
