"""The model server each replica runs, locally as a process and in the container image.

``python -m mltoolkit.serving --model-path PATH --model-name NAME --port PORT --replica-id ID``
serves ``POST /predict`` and Open Inference Protocol V2; in-process, ``create_app(config)``.
"""

from mltoolkit.serving.app import STATE, ServerState, create_app
from mltoolkit.serving.batching import Batcher, PredictCall
from mltoolkit.serving.config import ServerConfig, config_from_args
from mltoolkit.serving.model import ModelLoadError, PredictError, ServedModel, load_model
from mltoolkit.serving.protocol import RequestError
from mltoolkit.serving.server import run, serve

__all__ = [
    "STATE",
    "Batcher",
    "ModelLoadError",
    "PredictCall",
    "PredictError",
    "RequestError",
    "ServedModel",
    "ServerConfig",
    "ServerState",
    "config_from_args",
    "create_app",
    "load_model",
    "run",
    "serve",
]
