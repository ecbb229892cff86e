"""A minimal FastAPI app serving the benchmark model, as a data scientist would write it.

    DIGITS_MODEL_PATH=digits.joblib uvicorn fastapi_app:app --port 8000

``POST /predict`` with ``{"instances": [[...], ...]}`` answers ``{"predictions": [...]}`` (the
same bodies as mltoolkit's ``/predict``). The handler is ``async def``: the model takes well under
a millisecond, so calling it on the event loop beats FastAPI's thread-pool hop for ``def``.
"""

import os

import joblib
import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

model = joblib.load(os.environ["DIGITS_MODEL_PATH"])
app = FastAPI()


class PredictRequest(BaseModel):
    instances: list[list[float]]


@app.post("/predict")
async def predict(request: PredictRequest) -> dict:
    return {"predictions": model.predict(np.asarray(request.instances)).tolist()}


@app.get("/health")
async def health() -> dict:
    return {"ok": True}
