"""The long training run's curves: held-out and training-batch bits per byte, and a power-law fit."""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.release.settings import MIN_FIT_POINTS


def read_training_run(folder: str | Path, option: str = "--run", key: str = "training_run") -> dict[str, Any]:
    """The held-out and training-batch curves of a training run's ``--output`` folder, and the fit.

    ``heldout.json`` holds one entry per held-out evaluation (base tokens seen, pooled and per-domain strict
    bits per byte); the newest readable ``checkpoint-N/trainer_state.json`` carries the whole log history of
    the training batches. Only the numbers are kept, so ``--render-only`` can redraw without the folder.
    """
    folder = Path(folder)
    if folder.is_file() and folder.suffix == ".json":
        return _curves_of_earlier_report(folder, option, key)
    path = folder / "heldout.json"
    if not path.is_file():
        raise SystemExit(
            f"{option} {folder}: no heldout.json there; pass the --output folder of examples/train_smollm2.py "
            "(it writes heldout.json at every held-out evaluation)"
        )
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise SystemExit(
            f"{option} {folder}: {path} is not valid JSON ({error}); rerun once it is rewritten"
        ) from None
    heldout = sorted(
        (
            {
                k: v
                for k, v in entry.items()
                if k in ("step", "base_tokens_seen") or k.startswith("heldout_bpb")
            }
            for entry in entries
            if "heldout_bpb" in entry and "base_tokens_seen" in entry
        ),
        key=lambda entry: entry["base_tokens_seen"],
    )
    if not heldout:
        raise SystemExit(f"{option} {folder}: {path} has no entry with base_tokens_seen and heldout_bpb")
    checkpoint, train = _training_batches(folder)
    warm_start = _warm_start(folder)
    offset = int((warm_start or {}).get("base_tokens_seen") or 0)
    for entry in heldout:
        entry["base_tokens_seen"] += offset
    for row in train:
        row["base_tokens"] += offset
    return {
        "folder": str(folder),
        "read": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "checkpoint": checkpoint,
        "warm_start": warm_start,
        "heldout": heldout,
        "train": train,
        "fit": fit_power_law(
            [entry["base_tokens_seen"] for entry in heldout], [entry["heldout_bpb"] for entry in heldout]
        ),
    }


def _warm_start(folder: Path) -> dict[str, Any] | None:
    """``warm_start.json`` of a run that continued from a trained model (``train_smollm2.py --init-from``):
    its curves then count the base tokens that model had seen before the run."""
    path = folder / "warm_start.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise SystemExit(f"--run {folder}: {path} is not valid JSON ({error})") from None
    return record if isinstance(record, dict) else None


def read_control_run(args: argparse.Namespace) -> dict[str, Any] | None:
    """The control run's curves (``--control-run``, else ``--control``'s folder when it has ``heldout.json``);
    ``--control-run`` may also name an earlier results.json, whose control curves are kept."""
    folder = args.control_run
    if folder is None and args.control and (Path(args.control) / "heldout.json").is_file():
        folder = args.control
    if folder is None:
        return None
    if Path(folder).is_file():
        return read_training_run(folder, "--control-run", "control_run")
    curves = read_training_run(folder, "--control-run" if args.control_run else "--control")
    curves["planned_steps"] = _planned_steps(Path(folder))
    return curves


def _planned_steps(folder: Path) -> int | None:
    """The run's total steps (``max_steps`` of its newest checkpoint), to say how far a running control is."""
    found = sorted(
        (int(p.name.split("-")[1]), p) for p in folder.glob("checkpoint-*") if p.name.split("-")[1].isdigit()
    )
    for _, checkpoint in reversed(found):
        try:
            return int(
                json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))["max_steps"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return None


def at_equal_tokens(curve: list[dict[str, Any]], tokens: float, key: str) -> float | None:
    """``key`` of a held-out curve at ``tokens`` base tokens seen, linear between its points (None outside)."""
    points = [(e["base_tokens_seen"], e[key]) for e in curve if key in e]
    if len(points) == 1 and points[0][0] == tokens:
        return points[0][1]
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if t0 <= tokens <= t1:
            return v0 if t1 == t0 else v0 + (v1 - v0) * (tokens - t0) / (t1 - t0)
    return None


def _curves_of_earlier_report(path: Path, option: str, key: str) -> dict[str, Any]:
    """The curves an earlier report kept (its ``key``), for when the run's folder is gone."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise SystemExit(f"{option} {path}: not valid JSON ({error})") from None
    curves = report.get(key) if isinstance(report, dict) else None
    if not isinstance(curves, dict) or not curves.get("heldout"):
        raise SystemExit(
            f"{option} {path}: no {key} curves in it; pass a results.json that this script wrote with "
            f"{option} FOLDER, or the run's --output folder"
        )
    return curves


def _training_batches(folder: Path) -> tuple[str | None, list[dict[str, float]]]:
    """The newest readable checkpoint's name and its logged training batches (a checkpoint being written is
    skipped for the one before it)."""
    states = sorted(
        folder.glob("checkpoint-*/trainer_state.json"),
        key=lambda p: int(p.parent.name.split("-")[-1]) if p.parent.name.split("-")[-1].isdigit() else -1,
    )
    for state in reversed(states):
        try:
            history = json.loads(state.read_text(encoding="utf-8"))["log_history"]
        except (OSError, ValueError, KeyError):
            continue
        rows = [
            {
                "step": entry["step"],
                "base_tokens": entry["num_base_tokens"],
                "bits_per_byte": entry["bits_per_byte"],
                **{k: entry[k] for k in ("loss", "compression_ratio") if k in entry},
            }
            for entry in history
            if "loss" in entry and "bits_per_byte" in entry and "num_base_tokens" in entry
        ]
        return state.parent.name, rows
    return None, []


def power_law(tokens: Any, a: float, b: float, c: float) -> Any:
    """``a + b * tokens^(-c)``, tokens in millions (the fitted curve; numpy arrays or floats)."""
    return a + b * tokens ** (-c)


def fit_power_law(tokens: Sequence[float], values: Sequence[float]) -> dict[str, Any] | None:
    """Least-squares fit of ``values = a + b * (tokens / 1e6)^(-c)`` and its extrapolation to 2x and 4x.

    Points with no tokens seen (the untrained start) are left out: the curve is infinite there. Three
    parameters need at least :data:`MIN_FIT_POINTS` points, else None. scipy's ``curve_fit`` refines the best
    point of a grid over ``c`` (``a`` and ``b`` are linear least squares for each ``c``); without scipy the
    grid's best point is the fit. ``c`` is kept in [0.01, 3]; ``at_bound`` says when the fit sits on a bound,
    which means the data do not pin the exponent down.
    """
    import numpy as np

    points = [(t / 1e6, v) for t, v in zip(tokens, values) if t > 0 and math.isfinite(v)]
    if len(points) < MIN_FIT_POINTS:
        return None
    x = np.array([t for t, _ in points], dtype=float)
    y = np.array([v for _, v in points], dtype=float)
    low, high = 0.01, 3.0
    best = None
    for c in np.linspace(low, high, 300):
        design = np.stack([np.ones_like(x), x ** (-c)], axis=1)
        (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
        error = float(np.sum((power_law(x, a, b, c) - y) ** 2))
        if best is None or error < best[0]:
            best = (error, float(a), float(b), float(c))
    _, a, b, c = best
    method = "numpy grid over c, least squares for a and b"
    try:
        from scipy.optimize import curve_fit

        (a, b, c), _ = curve_fit(
            power_law,
            x,
            y,
            p0=(a, b, c),
            bounds=([-np.inf, -np.inf, low], [np.inf, np.inf, high]),
            maxfev=20000,
        )
        a, b, c = float(a), float(b), float(c)
        method = "scipy.optimize.curve_fit"
    except ImportError:
        pass
    except (RuntimeError, ValueError):  # no convergence: keep the grid's best point
        pass
    seen = float(x.max())
    residual = float(np.sqrt(np.mean((power_law(x, a, b, c) - y) ** 2)))
    return {
        "a": a,
        "b": b,
        "c": c,
        "points": len(points),
        "tokens_seen": seen * 1e6,
        "first_tokens": float(x.min()) * 1e6,
        "rms_residual": residual,
        "method": method,
        "at_bound": bool(min(c - low, high - c) < 1e-3),
        "at_seen": float(power_law(seen, a, b, c)),
        "extrapolated": {f"{k}x": float(power_law(k * seen, a, b, c)) for k in (2, 4)},
    }


def heldout_domains(heldout: list[dict[str, Any]]) -> list[str]:
    """The per-domain curves present in the held-out entries, in first-seen order."""
    return list(
        dict.fromkeys(
            k.removeprefix("heldout_bpb_") for e in heldout for k in e if k.startswith("heldout_bpb_")
        )
    )
