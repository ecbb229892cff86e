"""GKETarget.predict_batch / run_batch go to its endpoint (the cloud load balancer); here the
endpoint is the scripted server, so no cloud is needed. (LocalTarget's are in test_fleet.py.)"""

import numpy as np
import pytest


def test_gke_target_scores_through_its_endpoint(scripted_endpoint, scripted, monkeypatch):
    pytest.importorskip("pulumi")  # the gcp extra
    from mltoolkit.gcp.target import GKETarget

    monkeypatch.setattr(GKETarget, "endpoint", property(lambda self: scripted_endpoint))
    target = object.__new__(GKETarget)  # no stack: only the endpoint is used
    values = np.arange(60.0).reshape(20, 3)
    predictions = target.predict_batch(values, chunk_rows=6, progress=False)
    assert predictions.tolist() == values.sum(axis=1).tolist()
    run = target.run_batch(values, chunk_rows=6, progress=False, in_flight=2)
    assert run.rows_scored == 20 and len(run.attempts) == 4
    assert scripted.posts == 8
