"""benchmarks/peers/results.py: repeated runs by cell, paired ratios and differences, notes."""

from peers.results import Cell, Results

OURS = Cell("ours", 1, 32)
THEIRS = Cell("theirs", 1, 32)


def test_ratios_and_differences_pair_runs_of_the_same_round(make_result):
    results = Results()
    for round_, (mine, theirs) in enumerate([(3000, 1000), (1500, 500), (4000, 1000)]):
        results.add(OURS, round_, make_result(rps=mine, p99=2.0 + round_))
        results.add(THEIRS, round_, make_result(rps=theirs, p99=10.0))
    # per round: 3.0, 3.0, 4.0 -> median 3.0 (the ratio of medians would be 3000/1000 = 3.0 too,
    # but min-max shows the spread of the pairs, not of the raw numbers)
    ratio = results.ratio(OURS, THEIRS)
    assert (ratio.median, ratio.low, ratio.high) == (3.0, 3.0, 4.0)
    difference = results.difference(OURS, THEIRS, "p99_ms")  # 2-10, 3-10, 4-10
    assert (difference.median, difference.low, difference.high) == (-7.0, -8.0, -6.0)


def test_a_round_missing_on_one_side_is_left_out_of_the_pairs(make_result):
    results = Results()
    results.add(OURS, 0, make_result(rps=2000))
    results.add(OURS, 1, make_result(rps=9000))  # the other server failed in round 1
    results.add(THEIRS, 0, make_result(rps=1000))
    assert results.ratio(OURS, THEIRS).count == 1 and results.ratio(OURS, THEIRS).median == 2.0
    assert results.spread(OURS, "requests_per_s").count == 2


def test_errors_add_up_over_rounds_and_notes_are_not_repeated(make_result):
    results = Results()
    results.add(OURS, 0, make_result(errors=2))
    results.add(OURS, 1, make_result(errors=3))
    assert results.errors(OURS) == 5 and results.errors(THEIRS) == 0
    results.note("theirs", "not run: no wheel")
    results.note("theirs", "not run: no wheel")
    assert results.notes == {"theirs": ["not run: no wheel"]}
