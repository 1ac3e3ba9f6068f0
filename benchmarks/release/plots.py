"""The report's plots (matplotlib, Agg): bits per byte, generation, multiple choice and the run's curves."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from benchmarks import generation, long_context
from benchmarks.release.bars import bpb_domains
from benchmarks.release.curves import heldout_domains, power_law
from benchmarks.release.settings import MC_DOMAINS, MC_TASKS, UNSEEN_DOMAIN


def plot(report: dict[str, Any], assets: Path) -> None:
    """bpb.png (per domain: base, control, zip2zip), generation.png (steps, ms/step, bytes/s), next_line.png
    (acc), when the run's curves were read training_curves.png, and when long context was measured
    long_context.png (zip2zip / base and / control against the window)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plot_bits_per_byte(report, assets / "bpb.png")
    s = report["run"]["settings"]
    generation.plot(
        report["generation"]["rows"],
        str(assets / "generation.png"),
        title=f"Greedy generation of {s['new_tokens']} new base tokens, SmolLM2-135M, CPU, batch 1",
    )
    plt.close("all")

    mc = report["multiple_choice"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    width = 0.8 / max(1, len(mc))
    for ax, metric in zip(axes, ("acc", "acc_norm")):
        for k, (name, run) in enumerate(mc.items()):
            xs = [i + (k - (len(mc) - 1) / 2) * width for i in range(len(MC_DOMAINS))]
            ax.bar(xs, [run["tasks"][MC_TASKS[d]][metric] for d in MC_DOMAINS], width, label=name)
        ax.axhline(0.25, color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(range(len(MC_DOMAINS)), [MC_TASKS[d] for d in MC_DOMAINS])
        ax.set_title(metric)
    axes[0].set_ylabel("accuracy (chance 0.25)")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(assets / "next_line.png", dpi=110)
    plt.close(fig)

    if report.get("training_run"):
        plot_training_curves(
            report["training_run"], assets / "training_curves.png", control=report.get("control_run")
        )
    if report.get("long_context"):
        long_context.plot(report["long_context"]["quality"], assets / "long_context.png")


def plot_bits_per_byte(report: dict[str, Any], path: Path) -> None:
    """Bars of strict bits per byte per domain: the base model, the control when measured, and zip2zip."""
    import matplotlib.pyplot as plt

    domains = bpb_domains(report)
    compared = report["bits_per_byte"]["compared"]["domains"]
    series = {"base": [compared[d]["base"]["bits_per_byte"] for d in domains]}
    control = report["bits_per_byte"].get("control")
    if control:
        series["control (M = 1)"] = [
            control["domains"].get(d, {}).get("zip2zip", {}).get("bits_per_byte", math.nan) for d in domains
        ]
    series["zip2zip"] = [compared[d]["zip2zip"]["bits_per_byte"] for d in domains]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    width = 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(domains))]
        bars = ax.bar(xs, values, width, label=name)
        ax.bar_label(bars, fmt="%.3f", fontsize=6)
    ax.set_xticks(range(len(domains)), [f"{d} (unseen)" if d == UNSEEN_DOMAIN else d for d in domains])
    ax.set_ylabel("bits per byte (strict, lower is better)")
    title = "base, control" if control else "base"
    ax.set_title(f"Held-out bits per byte, SmolLM2-135M: {title} and zip2zip")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_training_curves(curves: dict[str, Any], path: Path, control: dict[str, Any] | None = None) -> None:
    """Left: held-out bits per byte per domain and pooled against base tokens seen. Middle: the pooled curve,
    the training batches' bits per byte and the fit extended to 4x the tokens seen. Right, with the control's
    curves: pooled and unseen-domain curves of both runs."""
    import matplotlib.pyplot as plt
    import numpy as np

    heldout = curves["heldout"]
    tokens = [e["base_tokens_seen"] / 1e6 for e in heldout]
    pooled = [e["heldout_bpb"] for e in heldout]
    if control:
        fig, (left, right, beside) = plt.subplots(1, 3, figsize=(17, 4))
        for run, label, style in ((heldout, "zip2zip", "-"), (control["heldout"], "control (M = 1)", "--")):
            for key, name, color in (
                ("heldout_bpb", "pooled", "black"),
                (f"heldout_bpb_{UNSEEN_DOMAIN}", f"{UNSEEN_DOMAIN} (unseen)", "tab:red"),
            ):
                points = [(e["base_tokens_seen"] / 1e6, e[key]) for e in run if key in e]
                beside.plot(
                    [t for t, _ in points],
                    [v for _, v in points],
                    style,
                    color=color,
                    marker=".",
                    label=f"{label}, {name}",
                )
        beside.set_title("zip2zip against the no-compression control")
        axes = (left, right, beside)
    else:
        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
        axes = (left, right)
    for domain in heldout_domains(heldout):
        points = [
            (e["base_tokens_seen"] / 1e6, e["heldout_bpb_" + domain])
            for e in heldout
            if "heldout_bpb_" + domain in e
        ]
        style = "--" if domain == UNSEEN_DOMAIN else "-"
        label = f"{domain} (unseen)" if domain == UNSEEN_DOMAIN else domain
        left.plot([t for t, _ in points], [v for _, v in points], style, marker=".", label=label)
    left.plot(tokens, pooled, color="black", linewidth=2, marker="o", label="pooled")
    left.set_title("held-out strict bits per byte per domain")
    right.plot(tokens, pooled, color="black", marker="o", linestyle="", label="held-out, pooled")
    if curves["train"]:
        right.plot(
            [r["base_tokens"] / 1e6 for r in curves["train"]],
            [r["bits_per_byte"] for r in curves["train"]],
            color="grey",
            alpha=0.6,
            label="training batches",
        )
    fit = curves.get("fit")
    if fit:
        xs = np.linspace(fit["first_tokens"] / 1e6, 4 * fit["tokens_seen"] / 1e6, 200)
        right.plot(
            xs,
            power_law(xs, fit["a"], fit["b"], fit["c"]),
            "--",
            color="tab:red",
            label=f"fit a + b t^-c ({fit['points']} points)",
        )
        for k in (2, 4):
            right.plot(k * fit["tokens_seen"] / 1e6, fit["extrapolated"][f"{k}x"], "x", color="tab:red")
            right.annotate(
                f"{k}x: {fit['extrapolated'][f'{k}x']:.3f}",
                (k * fit["tokens_seen"] / 1e6, fit["extrapolated"][f"{k}x"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(0, 6),
            )
    right.set_title("pooled held-out curve, training batches and fit")
    for ax in axes:
        ax.set_xlabel("base tokens seen (millions)")
        ax.set_ylabel("bits per byte")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
