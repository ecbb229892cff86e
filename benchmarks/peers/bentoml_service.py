"""A BentoML service for the benchmark model, as BentoML's guides write one.

    DIGITS_MODEL_PATH=digits.joblib bentoml serve bentoml_service:Digits --port 3000

``POST /predict`` with ``{"instances": [[...], ...]}`` answers ``{"predictions": [...]}``.
One worker, the access log off (one log line per request costs a small server dearly), and
otherwise as BentoML's quickstart has it: its adaptive batching (``batchable=True``) is not turned
on. The API is ``async def`` for the same reason as the FastAPI peer's handler.
"""

import os

import bentoml
import joblib
import numpy as np


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class Digits:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["DIGITS_MODEL_PATH"])

    @bentoml.api
    async def predict(self, instances: list[list[float]]) -> dict:
        return {"predictions": self.model.predict(np.asarray(instances)).tolist()}
