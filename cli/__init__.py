"""moot.cli: the `moot` command line (demo, bench, doctor, image, model), and the model store."""

from ._errors import CliError, ExitCode
from ._main import build_parser, main
from ._model_store import (
    ModelSpec,
    ModelStoreError,
    ModelVerificationError,
    cached_model,
    fetch_model,
    join_chunks,
    model_path,
    models_dir,
)

__all__ = [
    "CliError",
    "ExitCode",
    "ModelSpec",
    "ModelStoreError",
    "ModelVerificationError",
    "build_parser",
    "cached_model",
    "fetch_model",
    "join_chunks",
    "main",
    "model_path",
    "models_dir",
]
