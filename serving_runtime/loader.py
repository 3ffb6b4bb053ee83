"""Import a handler as the container does and load its model with `model_fn`."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from serving_runtime.contract import DEFAULT_PROGRAM
from serving_runtime.errors import ServingError

HANDLER_FUNCTIONS = ("model_fn", "input_fn", "predict_fn", "output_fn")


def import_handler(code_dir: Path, program: str) -> ModuleType:
    """Import SAGEMAKER_PROGRAM from the code folder, which also goes on sys.path so
    the handler can import its neighbours (the container pip-installs the folder)."""
    path = code_dir / program
    if not path.is_file():
        raise ServingError(f"SAGEMAKER_PROGRAM {program!r} is not in {code_dir}")
    module_name = Path(program).stem
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    if str(code_dir) not in sys.path:
        sys.path.insert(0, str(code_dir))
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the handler's own import failed: show where
        raise ServingError(f"{program} failed to import: {type(error).__name__}: {error}") from error
    missing = [name for name in HANDLER_FUNCTIONS if not callable(getattr(module, name, None))]
    if missing:
        raise ServingError(
            f"{program} does not define {', '.join(missing)}; this tool serves handlers that define all of "
            f"{', '.join(HANDLER_FUNCTIONS)} (the image's defaults answer 500 to common requests)"
        )
    return module


@dataclass
class LoadedHandler:
    module: ModuleType
    model: Any

    def invoke(self, body: str | bytes, content_type: str, accept: str) -> Any:
        """input_fn -> predict_fn -> output_fn, as the container chains them."""
        m = self.module
        return m.output_fn(m.predict_fn(m.input_fn(body, content_type), self.model), accept)


def load_handler(model_dir: Path, code_dir: Path, program: str = DEFAULT_PROGRAM) -> LoadedHandler:
    module = import_handler(code_dir, program)
    try:
        model = module.model_fn(str(model_dir))
    except Exception as error:
        raise ServingError(f"model_fn({model_dir}) failed: {type(error).__name__}: {error}") from error
    return LoadedHandler(module=module, model=model)
