"""The handler keeps literal copies of the container contract (it runs alone in the
serving image and imports nothing of the project): they must equal the contract's."""

from __future__ import annotations

import ast

from serving_runtime import contract
from tests.conftest import ROOT

HANDLER = ROOT / "inference" / "inference.py"


def handler_constants() -> dict[str, ast.expr]:
    tree = ast.parse(HANDLER.read_text())
    return {
        target.id: node.value
        for node in tree.body if isinstance(node, ast.Assign)
        for target in node.targets if isinstance(target, ast.Name)
    }


def test_model_file_name_is_the_contracts() -> None:
    assert ast.literal_eval(handler_constants()["MODEL_FILENAME"]) == contract.MODEL_FILENAME


def test_content_types_are_the_contracts() -> None:
    constants = handler_constants()
    types = tuple(ast.literal_eval(constants[name.id]) for name in constants["SUPPORTED_TYPES"].elts)
    assert types == contract.SUPPORTED_CONTENT_TYPES


def test_request_limit_variable_and_default_are_the_contracts() -> None:
    # MAX_REQUEST_BYTES = int(os.environ.get("<variable>", str(<default expression>)))
    call = handler_constants()["MAX_REQUEST_BYTES"].args[0]
    variable, default = call.args[0], call.args[1].args[0]
    assert ast.literal_eval(variable) == contract.MAX_REQUEST_BYTES_ENV
    assert eval(compile(ast.Expression(default), str(HANDLER), "eval"), {}) == contract.INSTANCE_PAYLOAD_LIMIT_BYTES


def test_handler_program_is_the_contracts() -> None:
    assert HANDLER.name == contract.DEFAULT_PROGRAM
