import gc

import pytest

from mltoolkit.gcp.loading import gc_paused


def test_the_collector_is_paused_in_the_block_and_restored_after_it():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()  # restored after an error too


def test_a_collector_the_caller_switched_off_stays_off():
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_plans_run_with_the_collector_paused(monkeypatch, deployment):
    """The program runs (and the provider modules import) while the collector is off."""
    from mltoolkit.gcp import mock_runtime
    from mltoolkit.gcp.mocks import CloudMocks
    from mltoolkit.gcp.program import build_program
    from tests.gcp.conftest import make_cluster

    seen = []
    program = build_program(make_cluster(), deployment)

    def watched():
        seen.append(gc.isenabled())
        program()

    mock_runtime.run_program(watched, CloudMocks("my-project"))
    assert seen == [False] and gc.isenabled()
