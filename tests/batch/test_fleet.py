"""predict_batch through a real local fleet (replica processes behind the balancer)."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mltoolkit.batch import BatchInterrupted

from .conftest import digits_rows

pytestmark = pytest.mark.slow


def test_a_table_is_spread_over_every_replica_and_comes_back_aligned(fleet, digits_model):
    clf = digits_model[0]
    target = fleet(replicas=2)
    X = digits_rows(digits_model, 10)  # 17,970 rows
    data = pd.DataFrame(X, index=pd.Index(np.arange(len(X))[::-1] * 2, name="id"))
    run = target.run_batch(data, progress=False, chunk_rows=500)
    assert run.predictions.index.equals(data.index)
    np.testing.assert_array_equal(run.predictions.to_numpy(), clf.predict(X))
    summary = run.summary()
    assert list(summary.index) == ["overall", "digits-0", "digits-1"]
    assert summary.loc["overall", "rows"] == len(X) == summary["rows"].iloc[1:].sum()
    assert (summary["rows"].iloc[1:] > 0).all()  # both replicas scored rows
    assert summary.loc["overall", "chunks"] == 36  # ceil(17,970 / 500)
    assert summary["node"].iloc[1:].tolist() == ["node-0", "node-1"]
    assert list(run.summary(by="node").index) == ["overall", "node-0", "node-1"]


def test_a_replica_killed_mid_run_loses_no_row_and_scores_none_twice(fleet, digits_model):
    clf = digits_model[0]
    # the balancer retries a refused connection itself; with retries=0 the requests that were on
    # (or sent to) the killed replica come back 502 and predict_batch must retry them
    target = fleet(replicas=2, retries=0)
    X = digits_rows(digits_model, 20)  # 35,940 rows in 1,797 small chunks
    killed = []

    def kill_once(progress):
        if not killed and progress.rows_done > 0:
            killed.append(target.kill_replica("digits-0"))

    run = target.run_batch(X, chunk_rows=20, progress=kill_once, backoff_base_s=0.05)
    assert killed
    np.testing.assert_array_equal(run.predictions.to_numpy(), clf.predict(X))
    ok = run.attempts[run.attempts["ok"]]
    assert sorted(ok["start"]) == list(range(0, len(X), 20))  # every chunk exactly once
    failed = run.attempts[~run.attempts["ok"]]
    assert run.retries == len(failed) >= 1
    assert set(failed["status"]) <= {0, 502, 503, 504}
    assert run.summary().loc["overall", "retries"] == run.retries


def test_parquet_in_parquet_out_interrupted_then_resumed(fleet, digits_model, tmp_path):
    clf = digits_model[0]
    target = fleet(replicas=2)
    X = digits_rows(digits_model, 6)
    columns = [f"pixel_{i}" for i in range(64)]
    paths = []
    for i, part in enumerate(np.array_split(X, 3)):
        paths.append(tmp_path / f"in-{i}.parquet")
        pq.write_table(pa.Table.from_pandas(pd.DataFrame(part, columns=columns)), paths[-1], row_group_size=1000)
    output = tmp_path / "out"

    def interrupt(progress):
        if progress.rows_done >= 1000 and not progress.finished:
            raise KeyboardInterrupt

    with pytest.raises(BatchInterrupted) as caught:
        target.run_batch(paths, output=output, chunk_rows=50, progress=interrupt, in_flight=1)
    assert 0 < caught.value.rows_done < len(X)

    run = target.run_batch(paths, output=output, progress=False)
    assert run.result == output and run.predictions is None
    assert run.rows_resumed == caught.value.rows_done
    scored = pd.read_parquet(output)
    assert scored["row"].tolist() == list(range(len(X)))  # each row once, in input order
    np.testing.assert_array_equal(scored["prediction"].to_numpy(), clf.predict(X))
