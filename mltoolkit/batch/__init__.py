"""Batch prediction through the fleet: score a big table across every replica.

``Endpoint.predict_batch`` / ``run_batch`` (run.py) drive it: the input is checked and read
(source.py), rows per request planned from a measured cost (plan.py), chunks sent through the
endpoint (transport.py, binary tensors by default), written to an output that a re-run resumes
(output.py), with progress (progress.py) and a per-replica summary (summary.py).
"""

from mltoolkit.batch.plan import CostModel, chunk_bounds, fit_cost, plan_chunk_rows
from mltoolkit.batch.progress import BatchProgress
from mltoolkit.batch.run import BatchError, BatchInterrupted, BatchRun, BatchSettings, run_batch
from mltoolkit.batch.source import BatchInputError
from mltoolkit.batch.summary import summarize_batch

__all__ = [
    "BatchError",
    "BatchInputError",
    "BatchInterrupted",
    "BatchProgress",
    "BatchRun",
    "BatchSettings",
    "CostModel",
    "chunk_bounds",
    "fit_cost",
    "plan_chunk_rows",
    "run_batch",
    "summarize_batch",
]
