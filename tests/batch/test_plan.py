"""Chunk planning: the cost model, the caps on rows per request, chunk bounds, back-off."""

import pytest

from mltoolkit.batch.plan import (
    CHUNKS_PER_SLOT,
    CostModel,
    backoff_s,
    chunk_bounds,
    fit_cost,
    plan_chunk_rows,
)


def test_fit_cost_takes_the_fastest_probe_of_each_size():
    # 16 rows: 3 ms (and a disturbed 9 ms), 256 rows: 27 ms -> 0.1 ms a row, 1.4 ms fixed
    cost = fit_cost([(16, 0.003), (256, 0.027), (16, 0.009), (256, 0.040)])
    assert cost.per_row_s == pytest.approx(0.0001)
    assert cost.fixed_s == pytest.approx(0.0014)
    assert cost.seconds(1000) == pytest.approx(0.1014)


def test_fit_cost_needs_two_sizes():
    with pytest.raises(ValueError, match="two sizes"):
        fit_cost([(16, 0.1), (16, 0.2)])


def plan(cost, **overrides):
    settings = dict(target_s=0.25, total_rows=10**7, in_flight=4, bytes_per_row=512, max_request_bytes=4 * 2**20)
    settings.update(overrides)
    return plan_chunk_rows(cost, **settings)


def test_rows_per_request_fill_the_target_time():
    # (0.25 s - 0.01 s fixed) / 0.0001 s a row = 2400 rows
    assert plan(CostModel(fixed_s=0.01, per_row_s=0.0001)) == 2400


def test_the_body_size_caps_a_cheap_model():
    # free rows: only the 4 MiB body limit holds them, 4 MiB / 512 B = 8192 rows
    assert plan(CostModel(fixed_s=0.001, per_row_s=0.0)) == 8192


def test_every_slot_gets_several_chunks():
    # 10,000 rows over 4 slots x CHUNKS_PER_SLOT chunks = 625 rows a chunk
    assert plan(CostModel(0.0, 1e-6), total_rows=10_000) == 10_000 // (4 * CHUNKS_PER_SLOT)


def test_at_least_one_row_and_at_most_all():
    assert plan(CostModel(fixed_s=1.0, per_row_s=0.1)) == 1  # the fixed cost alone is over target
    assert plan(CostModel(0.0, 0.0), total_rows=5) == 5


def test_chunks_cover_every_row_once_in_order():
    chunks = chunk_bounds(10, 4)
    assert [(c.index, c.start, c.stop) for c in chunks] == [(0, 0, 4), (1, 4, 8), (2, 8, 10)]
    assert sum(c.rows for c in chunks) == 10
    with pytest.raises(ValueError):
        chunk_bounds(10, 0)


def test_backoff_doubles_up_to_its_cap():
    assert [backoff_s(a, base_s=0.1, cap_s=0.5) for a in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
