"""The release bars, their verdicts, and the ratios of a report they judge."""

from __future__ import annotations

from typing import Any, NamedTuple

from benchmarks.common import DOMAINS, bootstrap_interval, repeated_ngram_share
from benchmarks.release.settings import (
    BAR_TOLERANCE,
    BPB_BARS,
    FULL,
    GENERATION_COMPRESSION_BAR,
    GENERATION_DOMAINS,
    HYPERTOKEN_SHARE_BAR,
    LONG_CONTROL_BARS,
    LONG_GAIN_BAR,
    LONG_GAIN_DOMAINS,
    LONG_GAIN_WINDOWS,
    LONG_KV_BAR,
    LONG_TIME_BAR,
    MC_BASE_RUN,
    MC_DOMAINS,
    MC_POINTS_BAR,
    MC_TASKS,
    REPEAT_POINTS_BAR,
    REPEATED_NGRAM,
    SAME_WORK_TIME_BAR,
    UNSEEN_DOMAIN,
)


def verdict(ok: bool | None) -> str:
    """A bar's verdict in bold; ``None`` (the run did not measure it) is neither a pass nor a miss."""
    return "**not measured**" if ok is None else "**PASS**" if ok else "**MISS**"


class Bar(NamedTuple):
    """One release bar: what it compares, the measured value (None: not in this run), the limit, the unit.

    ``at_most`` says which side passes. Units: ``"x"`` a ratio, ``""`` a plain number, ``"%"`` a share
    (stored as a fraction), ``"points"`` a difference of percentages, ``" of N"`` a count out of N.
    """

    name: str
    value: float | None
    limit: float
    at_most: bool
    unit: str
    interval: tuple[float, float] | None = None
    """95% bootstrap interval over prompts, where the value is pooled over a few of them."""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        if self.at_most:
            return self.value <= self.limit + BAR_TOLERANCE
        return self.value >= self.limit - BAR_TOLERANCE

    def show(self, value: float) -> str:
        if self.unit == "%":
            return f"{value:.1%}"
        if self.unit == "points":
            return f"{value:+.1f} points"
        if self.unit.startswith(" of "):
            return f"{value:.0f}{self.unit}"
        return f"{value:.3f}{self.unit}"

    @property
    def measured(self) -> str:
        if self.value is None:
            return "not measured"
        if self.interval is None:
            return self.show(self.value)
        low, high = self.interval
        return f"{self.show(self.value)} (95% over prompts: {self.show(low)}-{self.show(high)})"

    @property
    def missed_by(self) -> str:
        """How far a missed bar is from its limit, in its unit; empty unless missed."""
        if self.met is not False:
            return ""
        gap = abs(self.value - self.limit)
        if self.unit == "%":
            return f"{100 * gap:.1f} points"
        if self.unit == "points":
            return f"{gap:.1f} points"
        if self.unit.startswith(" of "):
            return f"{gap:.0f}"
        return f"{gap:.3f}{self.unit}"


def prompt_interval(runs: list[dict[str, Any]], counted: str) -> tuple[float, float] | None:
    """95% interval over prompts (:func:`benchmarks.common.bootstrap_interval`) of ``counted`` (``base_tokens``
    or ``hypertokens``) per emitted code, from zip2zip's runs (one per prompt: repeats write the same codes);
    None where fewer than two prompts' runs carry generation statistics."""
    per_prompt = {run["prompt"]: run["stats"] for run in runs if "stats" in run}
    if len(per_prompt) < 2:
        return None
    stats = list(per_prompt.values())
    return bootstrap_interval([sum(s[counted]) for s in stats], [sum(s["codes"]) for s in stats])


def release_bars(report: dict[str, Any]) -> list[Bar]:
    """Every bar of the release with its measured value (None where this report lacks the measurement)."""
    domains = report["bits_per_byte"]["compared"]["domains"]
    bars = []
    for domain, limit in BPB_BARS.items():
        label = f"{domain} (unseen)" if domain == UNSEEN_DOMAIN else domain
        ratio = _bpb_ratio(domains.get(domain))
        bars.append(
            Bar(f"strict bits per byte zip2zip / base, {label} <= {limit:.2f}x", ratio, limit, True, "x")
        )
    rows = {row["domain"]: row for row in report["generation"]["rows"]}
    code = rows.get("code", {}).get("zip2zip", {})
    code_runs = report["generation"]["results"].get("code", {}).get("zip2zip", [])
    bars.append(
        Bar(
            f"own greedy continuations of code: base tokens per generated code >= {GENERATION_COMPRESSION_BAR:.2f}",
            code.get("compression"),
            GENERATION_COMPRESSION_BAR,
            False,
            "",
            prompt_interval(code_runs, "base_tokens"),
        )
    )
    bars.append(
        Bar(
            f"own greedy continuations of code: hypertokens >= {HYPERTOKEN_SHARE_BAR:.0%} of emitted codes",
            code.get("hypertoken_rate"),
            HYPERTOKEN_SHARE_BAR,
            False,
            "%",
            prompt_interval(code_runs, "hypertokens"),
        )
    )
    results = report["generation"]["results"]
    for domain in GENERATION_DOMAINS:
        shares = repeated_shares(results.get(domain, {}))
        gap = 100 * (shares["zip2zip"] - shares["base"]) if "zip2zip" in shares and "base" in shares else None
        bars.append(
            Bar(
                f"repeated {REPEATED_NGRAM}-grams of the continuations, {domain}: zip2zip - base <= "
                f"+{REPEAT_POINTS_BAR:.0f} points",
                gap,
                REPEAT_POINTS_BAR,
                True,
                "points",
            )
        )
    mc = report["multiple_choice"]
    for domain in MC_DOMAINS:
        task = MC_TASKS[domain]
        try:
            gap = 100 * (mc["zip2zip"]["tasks"][task]["acc"] - mc[MC_BASE_RUN]["tasks"][task]["acc"])
        except KeyError:
            gap = None
        bars.append(
            Bar(
                f"lm-eval {task} accuracy zip2zip - base ({MC_BASE_RUN.split()[-1].strip('()')}) >= "
                f"-{MC_POINTS_BAR:.0f} points",
                gap,
                -MC_POINTS_BAR,
                False,
                "points",
            )
        )
    time_ratio = same_work_ratios(results).get("code", {}).get("time")
    new_tokens = report["run"]["settings"]["new_tokens"]
    bars.append(
        Bar(
            f"time for the same {new_tokens} new base tokens of code continuation zip2zip / base <= "
            f"{SAME_WORK_TIME_BAR:.2f}x",
            time_ratio,
            SAME_WORK_TIME_BAR,
            True,
            "x",
            same_work_time_interval(results.get("code", {})),
        )
    )
    return bars + long_context_bars(report)


def long_context_bars(report: dict[str, Any]) -> list[Bar]:
    """The bars of section 5 (long context); every value None when the report has no such section."""
    settings = {**FULL, **report["run"]["settings"]}
    long = report.get("long_context") or {}
    bars = []
    short, wide = LONG_GAIN_WINDOWS
    for domain in LONG_GAIN_DOMAINS:
        at_short = long_context_ratio(report, domain, short)
        at_wide = long_context_ratio(report, domain, wide)
        label = f"{domain} (unseen)" if domain == UNSEEN_DOMAIN else domain
        bars.append(
            Bar(
                f"long context, {label}: zip2zip / base bits per byte at {wide:,} positions over the same at "
                f"{short:,} <= {LONG_GAIN_BAR:.2f}x",
                at_wide / at_short if at_wide is not None and at_short is not None else None,
                LONG_GAIN_BAR,
                True,
                "x",
            )
        )
    for window, limit in LONG_CONTROL_BARS.items():
        bars.append(
            Bar(
                f"long context: zip2zip / control bits per byte at {window:,} positions, pooled over domains "
                f"<= {limit:.2f}x",
                pooled_long_context_ratio(report, window, "control"),
                limit,
                True,
                "x",
            )
        )
    endings = long.get("endings")
    asked, new = settings["long_endings"], settings["long_new_tokens"]
    bars.append(
        Bar(
            f"held-out code files cut mid-file: zip2zip continuations that write all {new} new base tokens "
            f"without end-of-sequence >= {asked} of {asked}",
            endings["zip2zip_full"] if endings else None,
            asked,
            False,
            f" of {endings['prompts'] if endings else asked}",
        )
    )
    prompt = settings["long_prompt_tokens"]
    continuation, kv = long.get("continuation"), long.get("kv_cache")
    bars.append(
        Bar(
            f"time for {new} new base tokens after a {prompt:,}-token code prompt zip2zip / base <= "
            f"{LONG_TIME_BAR:.2f}x",
            continuation["ratio"] if continuation else None,
            LONG_TIME_BAR,
            True,
            "x",
        )
    )
    bars.append(
        Bar(
            f"KV-cache bytes after a {prompt:,}-token code prompt zip2zip / base <= {LONG_KV_BAR:.2f}x",
            kv["zip2zip"] / kv["base"] if kv else None,
            LONG_KV_BAR,
            True,
            "x",
        )
    )
    return bars


def long_context_ratio(report: dict[str, Any], domain: str, window: int, key: str = "base") -> float | None:
    """zip2zip / ``key`` (base or control) bits per byte of one domain at one long-context window, or None."""
    quality = (report.get("long_context") or {}).get("quality") or {}
    return _bpb_ratio((quality.get(domain) or {}).get("windows", {}).get(str(window)), key)


def pooled_long_context_ratio(report: dict[str, Any], window: int, key: str = "base") -> float | None:
    """zip2zip / ``key`` bits per byte at one window pooled over the long-context domains (their bits over their
    bytes, so each domain weighs by its bytes); None unless every domain has both scores there."""
    quality = (report.get("long_context") or {}).get("quality") or {}
    scores = [entry["windows"].get(str(window)) or {} for entry in quality.values()]
    if not scores or any(key not in s or "zip2zip" not in s for s in scores):
        return None
    bits = {
        name: sum(s[name]["bits_per_byte"] * s[name]["bytes"] for s in scores) for name in ("zip2zip", key)
    }
    return bits["zip2zip"] / bits[key]


def _bpb_ratio(entry: dict[str, Any] | None, key: str = "base") -> float | None:
    """zip2zip / ``key`` (base or control) bits per byte of one domain's entry, None when either is missing."""
    if not entry or key not in entry or "zip2zip" not in entry:
        return None
    return entry["zip2zip"]["bits_per_byte"] / entry[key]["bits_per_byte"]


def repeated_shares(configs: dict[str, list[dict[str, Any]]]) -> dict[str, float]:
    """Per generation config, the mean over its runs of :func:`repeated_ngram_share` of the continuation."""
    shares = {}
    for config, runs in configs.items():
        values = [repeated_ngram_share(run["output"], REPEATED_NGRAM) for run in runs if "output" in run]
        if values:
            shares[config] = sum(values) / len(values)
    return shares


def bpb_domains(report: dict[str, Any]) -> list[str]:
    """The domains this report scored, in :data:`DOMAINS` order (an older report may lack the unseen one)."""
    scored = report["bits_per_byte"]["compared"]["domains"]
    return [d for d in DOMAINS if d in scored] + [d for d in scored if d not in DOMAINS]


def fastest_runs(runs: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    """The fastest run of each prompt (repeats write the same text; the best time is the least disturbed)."""
    best: dict[Any, dict[str, Any]] = {}
    for run in runs:
        if run["prompt"] not in best or run["seconds"] < best[run["prompt"]]["seconds"]:
            best[run["prompt"]] = run
    return best


def same_work_time_interval(configs: dict[str, list[dict[str, Any]]]) -> tuple[float, float] | None:
    """95% interval over prompts of zip2zip / base time for the same new base tokens (see
    :func:`benchmarks.common.bootstrap_interval`); None without both configurations on two prompts or more."""
    zip_runs, base_runs = fastest_runs(configs.get("zip2zip", [])), fastest_runs(configs.get("base", []))
    prompts = [p for p in zip_runs if p in base_runs]
    if len(prompts) < 2:
        return None
    return bootstrap_interval(
        [zip_runs[p]["seconds"] for p in prompts], [base_runs[p]["seconds"] for p in prompts]
    )


def same_work_ratios(results: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per domain, zip2zip / base wall time and UTF-8 bytes over the same prompts (best run of each prompt).

    Every run writes the same number of new base tokens, so the time ratio is the speed-up for equal work,
    apart from what bytes/s adds by counting bytes of different texts.
    """
    ratios = {}
    for domain, configs in results.items():
        totals = {}
        for config in ("base", "zip2zip"):
            best = fastest_runs(configs.get(config, []))
            totals[config] = (
                sum(r["seconds"] for r in best.values()),
                sum(len(r["text"].encode()) for r in best.values()),
            )
        if totals["base"][0] and totals["base"][1]:
            ratios[domain] = {
                "time": totals["zip2zip"][0] / totals["base"][0],
                "bytes": totals["zip2zip"][1] / totals["base"][1],
            }
    return ratios
