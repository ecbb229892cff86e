"""benchmarks/peers/stats.py: medians with spreads, paired ratios, plain-text tables."""

import math

import pytest

from peers.stats import Spread, median_interval, paired_ratios, render_table


def test_a_spread_is_the_median_and_the_range_ignoring_missing_values():
    spread = Spread.of([300.0, 100.0, float("nan"), 200.0])
    assert (spread.median, spread.low, spread.high, spread.count) == (200.0, 100.0, 300.0, 3)
    assert spread.format() == "200 [100-300]"
    assert Spread.of([1.0, 2.0]).median == 1.5  # even count: the mean of the middle two


def test_one_value_has_no_range_and_none_is_a_dash():
    assert Spread.of([7.25]).format(1) == "7.2"
    empty = Spread.of([])
    assert empty.count == 0 and math.isnan(empty.median) and empty.format() == "-"


def test_the_median_interval_takes_order_statistics_that_cover_the_median():
    assert median_interval([0.9, 1.0, 0.8, 1.1]) is None  # 4 values: [min-max] covers 87.5 %
    assert median_interval([5.0, 1.0, 3.0, float("nan"), 2.0, 4.0]) == (1.0, 5.0)  # 5: 93.75 %
    # 20 values: the 6th smallest and 6th largest cover 95.9 %; the 7th would cover only 88.5 %
    assert median_interval([float(v) for v in range(20, 0, -1)]) == (6.0, 15.0)
    assert median_interval(range(20), confidence=0.8) == (6.0, 13.0)  # the 7th from each end: 88.5 %


def test_the_median_interval_holds_the_true_median_as_often_as_it_says():
    import random

    draw = random.Random(7)
    true_median = math.log(2)  # of the exponential distribution: skewed, like req/s ratios' tails
    trials = 2000
    covered = 0
    for _ in range(trials):
        low, high = median_interval([draw.expovariate(1.0) for _ in range(20)])
        covered += low <= true_median <= high
    assert covered / trials >= 0.9


def test_ratios_pair_values_of_the_same_round_and_skip_zero_denominators():
    # rounds: (600/200, 900/300, 500/0, 400/100) -> the third is left out
    assert paired_ratios([600, 900, 500, 400], [200, 300, 0, 100]) == [3.0, 3.0, 4.0]
    # pairing is by position: a busy round slows both sides and the ratio stays
    assert paired_ratios([100, 1000], [50, 500]) == [2.0, 2.0]


def test_a_table_aligns_columns_and_checks_row_width():
    table = render_table(("name", "req/s"), [("a", "10"), ("longer", "2000")])
    assert table.splitlines() == [
        "name    req/s",
        "------  -----",
        "a          10",
        "longer   2000",
    ]
    with pytest.raises(ValueError, match="2 cells"):
        render_table(("a", "b", "c"), [("1", "2")])
