"""``python -m mltoolkit.serving``: validate the options, load the model, then serve.

Exit status: 2 for a bad option or model file, a model file whose SHA-256 is not the expected one,
or installed library versions that differ from those that pickled the model (nothing is bound;
checked on every start, restarts included); 1 if the port cannot be bound, 0 after a graceful stop
on SIGTERM/SIGINT.
"""

from __future__ import annotations

import sys
from typing import Mapping, Sequence

from mltoolkit.errors import SpecError
from mltoolkit.serving.config import build_parser, config_from_args
from mltoolkit.serving.model import ModelLoadError, load_model
from mltoolkit.serving.server import run
from mltoolkit.spec.libraries import LibraryVersionError, check_library_versions


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    try:
        config = config_from_args(argv, environ)
        check_library_versions(config.library_versions, f"model {config.model_name!r}")
        model = load_model(config.model_path, config.model_name, config.model_sha256)
    except SpecError as exc:
        build_parser().error(str(exc))  # prints usage and the message, exits 2
    except LibraryVersionError as exc:
        build_parser().error(f"--library-versions: {exc}")
    except ModelLoadError as exc:
        build_parser().error(f"--model-path: {exc}")
    return run(config, model)


if __name__ == "__main__":
    sys.exit(main())
