"""Request-cost distributions: how much work a request is, in seconds on a speed-1.0 replica."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from mltoolkit.errors import SpecError

COST_KINDS = ("constant", "exponential", "lognormal", "pareto")
DEFAULT_SHAPE = {"constant": None, "exponential": None, "lognormal": 1.0, "pareto": 2.5}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class CostDistribution:
    """A distribution of request costs with mean ``mean_s``.

    ``kind`` is one of ``constant``, ``exponential``, ``lognormal`` (``shape`` = sigma of the
    underlying normal, default 1.0) or ``pareto`` (heavy-tailed; ``shape`` = tail index alpha > 1,
    default 2.5; the smaller alpha, the heavier the tail). Every kind is parameterised by its mean,
    so swapping the kind keeps the offered load the same.
    """

    kind: str = "exponential"
    mean_s: float = 0.05
    shape: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in COST_KINDS:
            raise SpecError("CostDistribution.kind", self.kind, f"one of {list(COST_KINDS)}")
        if not _is_number(self.mean_s) or not 0 < self.mean_s <= 3600:
            raise SpecError("CostDistribution.mean_s", self.mean_s, "seconds, > 0 and <= 3600")
        if self.shape is None:
            object.__setattr__(self, "shape", DEFAULT_SHAPE[self.kind])
        elif self.kind in ("constant", "exponential"):
            raise SpecError(
                "CostDistribution.shape", self.shape, f"None for a {self.kind} distribution"
            )
        if self.kind == "lognormal" and (not _is_number(self.shape) or not 0 < self.shape <= 5):
            raise SpecError("CostDistribution.shape", self.shape, "a lognormal sigma in (0, 5]")
        if self.kind == "pareto" and (not _is_number(self.shape) or not 1 < self.shape <= 100):
            raise SpecError(
                "CostDistribution.shape", self.shape, "a Pareto tail index alpha in (1, 100]"
            )

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` costs in seconds drawn with ``rng``."""
        if self.kind == "constant":
            return np.full(n, float(self.mean_s))
        if self.kind == "exponential":
            return rng.exponential(self.mean_s, n)
        assert self.shape is not None
        if self.kind == "lognormal":
            sigma = self.shape
            return rng.lognormal(math.log(self.mean_s) - sigma**2 / 2, sigma, n)
        # Classical Pareto with scale x_m has mean alpha * x_m / (alpha - 1); numpy draws the
        # Lomax (Pareto II) variable, which plus one is a classical Pareto with x_m = 1.
        alpha = self.shape
        x_m = self.mean_s * (alpha - 1) / alpha
        return x_m * (1.0 + rng.pareto(alpha, n))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "mean_s": self.mean_s, "shape": self.shape}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CostDistribution:
        if not isinstance(data, Mapping):
            raise SpecError("CostDistribution", data, "a mapping with kind, mean_s, shape")
        unknown = sorted(set(data) - {"kind", "mean_s", "shape"})
        if unknown:
            raise SpecError(f"CostDistribution.{unknown[0]}", data[unknown[0]], "kind, mean_s or shape")
        return cls(**data)
