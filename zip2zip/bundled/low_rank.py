"""A fully fine-tuned model shipped small: its base plus low-rank deltas.

A 135M-parameter model fine-tuned in full weighs 270 MB in 16-bit floats, too much to ship inside a package.
Most of what training changed in a weight matrix lies in a few directions, so the package keeps, for each
changed matrix of the base model, the truncated SVD of ``trained - base`` (two thin factors), and every other
changed tensor (norms, the hyper-encoders) in full. The ranks are chosen together under one budget of stored
numbers: the singular directions that remove the most squared error per stored number go first, so a matrix
that training barely touched costs nothing and one it rewrote gets the rank it needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["LowRankDelta", "apply_low_rank_delta", "check_delta_scale", "extract_low_rank_delta"]

_NOISE = 1e-5
UP, DOWN = ".delta_up", ".delta_down"
"""Suffixes of a matrix's two factors: ``weight ~= base + up @ down`` (``up`` is out x r, ``down`` r x in)."""


@dataclass
class LowRankDelta:
    """What :func:`extract_low_rank_delta` kept: the tensors to store and how much of the change they hold."""

    tensors: dict[str, torch.Tensor]
    ranks: dict[str, int] = field(default_factory=dict)
    kept_energy: float = 1.0
    """Share of the matrices' squared change (Frobenius) the factors keep."""
    stored_numbers: int = 0

    def summary(self) -> dict[str, Any]:
        ranks = sorted(self.ranks.values())
        return {
            "stored_numbers": self.stored_numbers,
            "kept_energy": round(self.kept_energy, 4),
            "matrices": len(ranks),
            "rank_min": ranks[0] if ranks else 0,
            "rank_median": ranks[len(ranks) // 2] if ranks else 0,
            "rank_max": ranks[-1] if ranks else 0,
        }


def _is_base_matrix(name: str, tensor: torch.Tensor) -> bool:
    return name.startswith("language_model.") and tensor.dim() == 2


def extract_low_rank_delta(
    trained: nn.Module,
    base: nn.Module,
    budget: int,
    dtype: torch.dtype | None = None,
) -> LowRankDelta:
    """The change from ``base`` to ``trained`` in at most about ``budget`` stored numbers.

    Both models have the same architecture (``base`` is the untrained zip2zip model of the same base and
    settings). Each changed matrix of the base language model becomes two factors of the rank the joint
    allocation gives it (possibly none); every other changed tensor, and every tensor of zip2zip's own modules
    (initialised at random, so never equal to a fresh copy), is stored whole and counts against the budget
    first. Tied weights are handled once. Factors and tensors are cast to ``dtype`` (float16 default).
    """
    import torch

    dtype = dtype or torch.float16
    trained_params = dict(trained.named_parameters())
    base_params = dict(base.named_parameters())
    if set(trained_params) != set(base_params):
        extra = sorted(set(trained_params) ^ set(base_params))[:5]
        raise ValueError(
            f"the two models have different parameters (for example {extra}); pass the same architecture"
        )
    whole: dict[str, torch.Tensor] = {}
    spectra: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}
    for name, param in trained_params.items():
        reference = base_params[name]
        if param.shape != reference.shape:
            raise ValueError(f"{name}: shape {tuple(param.shape)} vs the base's {tuple(reference.shape)}")
        if not name.startswith("language_model."):
            # zip2zip's own modules (the hyper-encoders) start from a random initialisation: always whole
            whole[name] = param.detach().to(dtype).contiguous()
            continue
        if torch.equal(param.detach(), reference.detach()):
            continue
        if _is_base_matrix(name, param):
            delta = param.detach().float() - reference.detach().float()
            spectra[name] = torch.linalg.svd(delta, full_matrices=False)
        else:
            whole[name] = param.detach().to(dtype).contiguous()
    left = budget - sum(t.numel() for t in whole.values())
    if left < 0:
        raise ValueError(
            f"the budget of {budget:,} numbers is below the {budget - left:,} that the changed norms and "
            "hyper-encoders take whole; raise the budget"
        )
    ranks = _allocate_ranks({name: s for name, (_, s, _) in spectra.items()}, _shapes(spectra), left)
    tensors = dict(whole)
    kept = total = 0.0
    for name, (u, s, vh) in spectra.items():
        energy = s.square()
        total += float(energy.sum())
        rank = ranks[name]
        if rank == 0:
            continue
        kept += float(energy[:rank].sum())
        tensors[name + UP] = (u[:, :rank] * s[:rank]).to(dtype).contiguous()
        tensors[name + DOWN] = vh[:rank].to(dtype).contiguous()
    return LowRankDelta(
        tensors=tensors,
        ranks={name: rank for name, rank in ranks.items() if rank},
        kept_energy=kept / total if total else 1.0,
        stored_numbers=sum(t.numel() for t in tensors.values()),
    )


def _shapes(
    spectra: dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
) -> dict[str, tuple[int, int]]:
    return {name: (u.shape[0], vh.shape[1]) for name, (u, _, vh) in spectra.items()}


def _allocate_ranks(
    singular_values: dict[str, torch.Tensor], shapes: dict[str, tuple[int, int]], budget: int
) -> dict[str, int]:
    """Ranks that keep the most squared change within ``budget`` numbers: a direction of a matrix of shape
    (out, in) costs ``out + in`` numbers and removes ``sigma**2`` of error; the best ratios go first. Within a
    matrix the ratios fall with the singular values, so each matrix gets a prefix of its directions."""
    import torch

    names = list(singular_values)
    if not names:
        return {}
    ratios, owners, costs = [], [], []
    for index, name in enumerate(names):
        values = singular_values[name].double()
        # directions at float32 rounding level carry no change worth storing
        values = values[values > _NOISE * values.max()]
        energy = values.square()
        cost = float(sum(shapes[name]))
        ratios.append(energy / cost)
        owners.append(torch.full(energy.shape, index, dtype=torch.long))
        costs.append(torch.full(energy.shape, cost, dtype=torch.float64))
    ratio, owner, cost = torch.cat(ratios), torch.cat(owners), torch.cat(costs)
    order = torch.argsort(ratio, descending=True)
    affordable = torch.cumsum(cost[order], 0) <= budget
    counts = torch.bincount(owner[order][affordable], minlength=len(names))
    return {name: int(counts[index]) for index, name in enumerate(names)}


def check_delta_scale(scale: float) -> None:
    """Refuse a scale :func:`apply_low_rank_delta` cannot apply."""
    if not 0.0 < scale <= 1.0:
        raise ValueError(
            f"scale={scale}: the delta can be applied in part (0 < scale < 1) or whole (1), nothing else"
        )


def apply_low_rank_delta(model: nn.Module, tensors: dict[str, torch.Tensor], scale: float = 1.0) -> None:
    """Turn ``model`` (the untrained zip2zip model of the base) into the trained one, in place.

    ``scale`` below 1 moves the base language model only part of the way: every weight of it becomes
    ``base + scale * (trained - base)`` (the factors' product scaled, the whole tensors interpolated), while
    zip2zip's own modules, which have no base to return to, are set whole. Interpolating a fine-tune toward its
    base keeps more of what the base knew about text the fine-tune never saw (Wortsman et al. 2022, WiSE-FT);
    ``benchmarks.delta_scale`` measures what each scale gives and costs.
    """
    import torch

    check_delta_scale(scale)
    params = dict(model.named_parameters())
    factors = {name[: -len(UP)] for name in tensors if name.endswith(UP)}
    names = set(tensors) - {n + UP for n in factors} - {n + DOWN for n in factors}
    unknown = sorted((names | factors) - set(params))
    missing_down = sorted(n for n in factors if n + DOWN not in tensors)
    if unknown or missing_down:
        raise ValueError(
            f"the delta does not fit this model: unknown parameters {unknown[:5]}, factors without their second "
            f"half {missing_down[:5]}; it was made for another architecture or settings"
        )
    with torch.no_grad():
        for name in names:
            value = tensors[name].to(params[name].dtype)
            if name.startswith("language_model.") and scale != 1.0:
                params[name].lerp_(value, scale)
            else:
                params[name].copy_(value)
        for name in factors:
            up, down = tensors[name + UP].float(), tensors[name + DOWN].float()
            params[name].add_((scale * (up @ down)).to(params[name].dtype))
