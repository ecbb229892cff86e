"""Ray Data ``map_batches`` as the batch-inference peer; run by the Ray virtualenv's Python.

    python ray_batch.py MODEL.joblib ROWS.npy OUT.npy --workers 2 --batch-size 8192

Prints one JSON line: ``startup_s`` (``ray.init`` on this machine), ``elapsed_s`` (from building
the dataset to the predictions materialized, every row through an actor pool of ``--workers``
actors with one CPU each), ``rows``. The predictions go to OUT.npy in input order (for the check).
"""

from __future__ import annotations

import argparse
import json
import time

import joblib
import numpy as np


class Predictor:
    def __init__(self, model_path: str) -> None:
        self.model = joblib.load(model_path)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"prediction": self.model.predict(batch["data"])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("rows")
    parser.add_argument("out")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8192)
    args = parser.parse_args()

    import ray

    started = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    startup_s = time.perf_counter() - started
    ray.data.DataContext.get_current().execution_options.preserve_order = True

    rows = np.load(args.rows, mmap_mode="r")
    started = time.perf_counter()
    dataset = ray.data.from_numpy(np.asarray(rows))
    predicted = dataset.map_batches(
        Predictor,
        fn_constructor_args=(args.model,),
        batch_size=args.batch_size,
        concurrency=args.workers,
        num_cpus=1,
        batch_format="numpy",
    )
    predictions = np.concatenate([b["prediction"] for b in predicted.iter_batches(batch_size=None, batch_format="numpy")])
    elapsed_s = time.perf_counter() - started
    np.save(args.out, predictions)
    ray.shutdown()
    print(json.dumps({"startup_s": startup_s, "elapsed_s": elapsed_s, "rows": int(len(predictions))}))


if __name__ == "__main__":
    main()
