import math

import numpy as np
import pytest

from mltoolkit.errors import SpecError
from mltoolkit.sim.costs import CostDistribution


@pytest.mark.parametrize(
    "costs",
    [
        CostDistribution("constant", 0.1),
        CostDistribution("exponential", 0.1),
        CostDistribution("lognormal", 0.1, 1.0),
        CostDistribution("pareto", 0.1, 3.0),
    ],
    ids=lambda c: c.kind,
)
def test_every_kind_has_the_mean_it_was_given(costs):
    samples = costs.sample(np.random.default_rng(7), 200_000)
    assert np.all(samples >= 0)
    # The sample mean of n i.i.d. draws is within 5 standard errors of the true mean except with
    # probability ~6e-7 (Pareto alpha=3 and lognormal sigma=1 both have finite variance).
    stderr = samples.std() / math.sqrt(samples.size)
    assert abs(samples.mean() - 0.1) <= 5 * stderr + 1e-12


def test_pareto_is_heavier_tailed_than_exponential_at_the_same_mean():
    rng = np.random.default_rng(3)
    exponential = CostDistribution("exponential", 0.1).sample(rng, 100_000)
    pareto = CostDistribution("pareto", 0.1, 2.1).sample(rng, 100_000)
    # Pareto(alpha, x_m): P(X > x) = (x_m / x)^alpha with x_m = 0.1 * 1.1 / 2.1 = 0.0524;
    # P(X > 1.0) = 0.0524^2.1 = 2.0e-3, while an exponential of mean 0.1 gives e^-10 = 4.5e-5.
    assert (pareto > 1.0).mean() > 10 * (exponential > 1.0).mean()
    # and no Pareto draw is below its scale x_m
    assert pareto.min() >= 0.1 * 1.1 / 2.1


def test_shape_defaults_per_kind_and_round_trips():
    assert CostDistribution("pareto", 0.2).shape == 2.5
    assert CostDistribution("lognormal", 0.2).shape == 1.0
    costs = CostDistribution("pareto", 0.2, 2.2)
    assert CostDistribution.from_dict(costs.to_dict()) == costs


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"kind": "weibull"}, "CostDistribution.kind"),
        ({"mean_s": 0}, "CostDistribution.mean_s"),
        ({"mean_s": float("nan")}, "CostDistribution.mean_s"),
        ({"kind": "pareto", "shape": 1.0}, "CostDistribution.shape"),  # infinite mean
        ({"kind": "lognormal", "shape": -1}, "CostDistribution.shape"),
        ({"kind": "exponential", "shape": 2.0}, "CostDistribution.shape"),
    ],
)
def test_bad_values_name_the_field(kwargs, field):
    with pytest.raises(SpecError) as info:
        CostDistribution(**kwargs)
    assert info.value.field == field


def test_from_dict_rejects_unknown_keys():
    with pytest.raises(SpecError, match="CostDistribution.mean_ms"):
        CostDistribution.from_dict({"kind": "constant", "mean_ms": 3})
