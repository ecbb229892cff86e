import numpy as np
import pytest

from mltoolkit.observe.arrivals import arrival_offsets


def test_constant_arrivals_are_evenly_spaced_from_zero():
    offsets = arrival_offsets(40, 1.0)
    # 0, 0.025, ..., 0.975: 40 sends, the one at 1.0 s is past the end
    assert len(offsets) == 40
    assert offsets[0] == 0.0 and offsets[-1] == pytest.approx(0.975)
    np.testing.assert_allclose(np.diff(offsets), 0.025)


@pytest.mark.parametrize(
    "rate, duration", [(3, 1.0), (10, 0.3), (0.5, 3.0), (200, 2.5), (7.3, 1.9)]
)
def test_constant_arrivals_count_is_rate_times_duration_give_or_take_one(rate, duration):
    offsets = arrival_offsets(rate, duration)
    assert abs(len(offsets) - rate * duration) <= 1
    assert (offsets < duration).all()


def test_poisson_arrivals_have_exponential_gaps_of_mean_one_over_rate():
    offsets = arrival_offsets(100, 100.0, "poisson", seed=1)
    gaps = np.diff(offsets)
    assert (offsets < 100.0).all() and (gaps > 0).all()
    # ~10 000 arrivals: count and mean gap within a few percent of rate·duration and 1/rate;
    # exponential gaps have standard deviation equal to their mean
    assert abs(len(offsets) - 10_000) < 400
    assert gaps.mean() == pytest.approx(0.01, rel=0.05)
    assert gaps.std() == pytest.approx(0.01, rel=0.05)


def test_poisson_arrivals_repeat_with_a_seed_and_differ_without():
    np.testing.assert_array_equal(
        arrival_offsets(50, 2.0, "poisson", seed=3), arrival_offsets(50, 2.0, "poisson", seed=3)
    )
    assert not np.array_equal(
        arrival_offsets(50, 2.0, "poisson", seed=3), arrival_offsets(50, 2.0, "poisson", seed=4)
    )


def test_max_requests_keeps_the_first_ones():
    np.testing.assert_allclose(arrival_offsets(10, 5.0, max_requests=3), [0.0, 0.1, 0.2])
    assert len(arrival_offsets(10, 5.0, "poisson", max_requests=3, seed=0)) == 3


def test_unknown_arrivals_are_refused():
    with pytest.raises(ValueError, match="'constant', 'poisson'"):
        arrival_offsets(10, 1.0, "bursty")
