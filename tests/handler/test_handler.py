"""The four handler functions, called directly, on a model trained in a temp dir."""

from __future__ import annotations

import json

import numpy as np
import pytest

from endpointctl.training import synthetic_transactions
from tests.conftest import ROOT

GUIDE_SDK_REQUEST = {"instances": [[0.5, 1.2, 0.3, 0.8, 0.1], [-0.2, 0.7, 1.1, 0.4, 0.6]]}  # section 4.1
GUIDE_BOTO3_REQUEST = {"instances": [[0.5, 1.2, 0.3, 0.8, 0.1]]}  # section 4.2
GUIDE_AWSCURL_REQUEST = '{"instances": [[0.5, 1.2, 0.3]]}'  # section 4.3: three features


@pytest.fixture(scope="module")
def handler(loaded_handler):
    return loaded_handler


def status_and_json(result):
    """(status, parsed body) for a tuple (200) or a response object."""
    if isinstance(result, tuple):
        body, content_type = result
        return 200, (json.loads(body) if content_type == "application/json" else body)
    return result.status_code, json.loads(result.get_data())


def test_guide_sdk_request_gets_predictions_and_probabilities(handler):
    status, body = status_and_json(handler.invoke(json.dumps(GUIDE_SDK_REQUEST), "application/json", "application/json"))
    assert status == 200
    features = np.array(GUIDE_SDK_REQUEST["instances"])
    assert body["predictions"] == handler.model.predict(features).tolist()
    assert np.allclose(body["probabilities"], handler.model.predict_proba(features))


def test_guide_boto3_request(handler):
    status, body = status_and_json(handler.invoke(json.dumps(GUIDE_BOTO3_REQUEST), "application/json", "application/json"))
    assert status == 200 and len(body["predictions"]) == 1 and len(body["probabilities"][0]) == 2


def test_guide_awscurl_request_with_three_features_is_a_400_that_says_why(handler):
    status, body = status_and_json(handler.invoke(GUIDE_AWSCURL_REQUEST, "application/json", "application/json"))
    assert status == 400 and body["error"] == "each row must have 5 features; got 3"


def test_predictions_equal_model_predict_on_many_rows(handler):
    features, _ = synthetic_transactions(2000, seed=99)
    body = json.dumps({"instances": features.tolist()})
    status, result = status_and_json(handler.invoke(body, "application/json", "application/json"))
    assert result["predictions"] == handler.model.predict(features).tolist()


def test_csv_round_trip_one_line_per_record_in_order(handler):
    features, _ = synthetic_transactions(500, seed=3)
    text = "\n".join(",".join(repr(v) for v in row) for row in features.tolist()) + "\n"
    body, content_type = handler.invoke(text, "text/csv", "text/csv")
    assert content_type == "text/csv"
    lines = body.split("\n")
    assert len(lines) == 500
    parsed = np.array([[float(x) for x in line.split(",")] for line in lines])
    assert parsed[:, 0].tolist() == handler.model.predict(features).tolist()
    assert np.array_equal(parsed[:, 1:], handler.model.predict_proba(features))  # repr round-trips exactly


def test_one_line_csv_works(handler):
    """The image's default handler squeezes this to 1-D and answers 500; a Batch
    Transform mini-batch can be a single line."""
    body, content_type = handler.invoke("0.5,1.2,0.3,0.8,0.1", "text/csv", "text/csv")
    assert content_type == "text/csv" and len(body.split("\n")) == 1


def test_csv_with_charset_arrives_as_bytes_and_works(handler):
    body, _ = handler.invoke(b"0.5,1.2,0.3,0.8,0.1\r\n1,2,3,4,5\r\n", "text/csv; charset=utf-8", "text/csv")
    assert len(body.split("\n")) == 2


def test_json_request_csv_response_and_accept_lists(handler):
    body, content_type = handler.invoke(json.dumps(GUIDE_SDK_REQUEST), "application/json", "application/xml, text/csv;q=0.5")
    assert content_type == "text/csv" and len(body.split("\n")) == 2
    _, content_type = handler.invoke(json.dumps(GUIDE_SDK_REQUEST), "application/json", "*/*")
    assert content_type == "application/json"


BAD_REQUESTS = [
    # (body, content type, accept, status, words in the reason)
    ('{"instances": [[0.5, 1.2', "application/json", "application/json", 400, "not valid JSON"),
    ("[[0.5, 1.2, 0.3, 0.8, 0.1]]", "application/json", "application/json", 400, '"instances"'),
    ('{"instances": []}', "application/json", "application/json", 400, "non-empty"),
    ('{"instances": [0.5, 1.2, 0.3, 0.8, 0.1]}', "application/json", "application/json", 400, "list of rows"),
    ('{"instances": [[0.5, 1.2, 0.3, 0.8, 0.1], [1, 2]]}', "application/json", "application/json", 400, "same number"),
    ('{"instances": [["0.5", 1.2, 0.3, 0.8, 0.1]]}', "application/json", "application/json", 400, "numbers only"),
    ('{"instances": [[true, 1.2, 0.3, 0.8, 0.1]]}', "application/json", "application/json", 400, "numbers only"),
    ('{"instances": [[null, 1.2, 0.3, 0.8, 0.1]]}', "application/json", "application/json", 400, "numbers only"),
    ('{"instances": [[NaN, 1.2, 0.3, 0.8, 0.1]]}', "application/json", "application/json", 400, "NaN or infinity"),
    ('{"instances": [[1e999, 1.2, 0.3, 0.8, 0.1]]}', "application/json", "application/json", 400, "NaN or infinity"),
    ("0.5,1.2,abc,0.8,0.1", "text/csv", "text/csv", 400, "CSV line 1 holds 'abc', which is not a number"),
    ("f1,f2,f3,f4,f5\n0.5,1.2,0.3,0.8,0.1", "text/csv", "text/csv", 400, "CSV line 1 holds 'f1'"),
    ("0.5,1.2,0.3,0.8,0.1\n1,2,3", "text/csv", "text/csv", 400, "CSV line 2 has 3 values; the lines before it have 5"),
    ("0.5,1.2,0.3,0.8,0.1\n\n1,2,3,4,5", "text/csv", "text/csv", 400, "CSV line 2 is blank"),
    ("", "text/csv", "text/csv", 400, "empty"),
    ("0.5,1.2,nan,0.8,0.1", "text/csv", "text/csv", 400, "NaN or infinity"),
    ("1,2,3,4", "text/csv", "text/csv", 400, "5 features"),
    ("<x/>", "application/xml", "application/json", 415, "not supported"),
    (b"\xff\xfe", "text/csv; charset=utf-8", "text/csv", 400, "not valid 'utf-8' text"),
    # Decoders that raise UnicodeError (not UnicodeDecodeError), LookupError or ValueError.
    (b"1,2,3,4,5", "application/json; charset=undefined", "text/csv", 400, "not valid 'undefined' text"),
    (b"1,2,3,4,5", "text/csv; charset=rot13", "text/csv", 400, "not valid 'rot13' text: LookupError"),
    (b"1,2,3,4,5", "text/csv; charset=utf-8\x00", "text/csv", 400, "not valid"),
    # punycode decodes in quadratic time: a 6 MB body would outlast the worker timeout.
    (b"1,2,3,4,5", "text/csv; charset=punycode", "text/csv", 400, "charset 'punycode' is not a character set for text"),
    (b"1,2,3,4,5", "text/csv; charset=IDNA", "text/csv", 400, "is not a character set for text"),
    # The forest computes in float32: beyond its range sklearn would raise (a 500).
    ('{"instances": [[1e39, 0, 0, 0, 0]]}', "application/json", "text/csv", 400,
     "row 0 feature 0 (counting from 0) is 1e+39, beyond the model's float32 range (magnitude up to 3.4028235e+38)"),
    ("1,2,3,4,5\n0,0,-3.5e38,0,0", "text/csv", "text/csv", 400, "row 1 feature 2 (counting from 0) is -3.5e+38"),
    ('{"instances": [[1, 1, 1, 1, 1], [1%s, 0, 0, 0, 0]]}' % ("0" * 400,), "application/json", "text/csv", 400,
     '"instances" row 1 feature 0 is an integer of 401 digits, beyond the float64 range'),
    ('{"instances": [[1, 1, 1, 1, 1], [1, {}, 0, 0, 0]]}', "application/json", "text/csv", 400, '"instances" row 1 holds a value that is not a number'),
    ('{"instances": [[0.5, 1.2, 0.3, 0.8, 0.1]]}', "application/json", "application/xml", 406, "accept type"),
]


@pytest.mark.parametrize("body, content_type, accept, status, reason", BAD_REQUESTS)
def test_bad_requests_get_a_4xx_that_says_why(handler, body, content_type, accept, status, reason):
    got_status, payload = status_and_json(handler.invoke(body, content_type, accept))
    assert got_status == status
    assert reason in payload["error"] and payload["status"] == status


def test_refusals_name_the_row_for_machines_too(handler):
    """`row` (counting from 0) lets `endpointctl transform` name the file's line."""
    for body, content_type in (("1,2,3,4,5\n1,2,3,4,5\n1,x,3,4,5", "text/csv"), ("1,1,1,1,1\n1,1,1,1,1\n1,1,nan,1,1", "text/csv"),
                               ("1,1,1,1,1\n1,1,1,1,1\n1,1,1e39,1,1", "text/csv"),
                               ('{"instances": [[1, 1, 1, 1, 1], [1, 1, 1, 1, 1], [1, null, 1, 1, 1]]}', "application/json")):
        status, payload = status_and_json(handler.invoke(body, content_type, "text/csv"))
        assert (status, payload["row"]) == (400, 2), payload


def test_values_at_the_edge_of_float32_are_answered(handler):
    """Numbers that round to float32's largest value are not infinite for the model."""
    edge = float(np.finfo(np.float32).max)
    status, body = status_and_json(handler.invoke(json.dumps({"instances": [[edge, -edge, 1e-45, 0, 1e-300]]}),
                                                  "application/json", "application/json"))
    assert status == 200
    features = np.array([[edge, -edge, 1e-45, 0, 1e-300]])
    assert body["predictions"] == handler.model.predict(features).tolist()


def test_a_float64_model_takes_what_float32_cannot(handler, monkeypatch):
    """The limit is the model's: a linear model computes in float64 and takes 1e39."""
    from sklearn.linear_model import LogisticRegression

    features, labels = synthetic_transactions(200, seed=1)
    linear = LogisticRegression().fit(features, labels)
    module = handler.module
    assert module._input_dtype(handler.model) == np.float32 and module._input_dtype(linear) == np.float64
    result = module.output_fn(module.predict_fn(module.input_fn('{"instances": [[1e39, 0, 0, 0, 0]]}', "application/json"),
                                                linear), "application/json")
    assert isinstance(result, tuple)


def test_oversized_body_is_413(handler, monkeypatch):
    monkeypatch.setattr(handler.module, "MAX_REQUEST_BYTES", 100)
    status, payload = status_and_json(handler.invoke("1,2,3,4,5\n" * 20, "text/csv", "text/csv"))
    assert status == 413 and "limit is 100 bytes" in payload["error"]
    status, _ = status_and_json(handler.invoke(b"1,2,3,4,5\n" * 20, "text/csv; charset=utf-8", "text/csv"))
    assert status == 413


def test_model_is_called_once_per_request(handler, monkeypatch):
    calls = []
    model = handler.model
    original = model.predict_proba
    monkeypatch.setattr(model, "predict_proba", lambda x: calls.append("proba") or original(x), raising=False)
    monkeypatch.setattr(model, "predict", lambda x: calls.append("predict"), raising=False)
    handler.invoke(json.dumps(GUIDE_SDK_REQUEST), "application/json", "application/json")
    assert calls == ["proba"]


def test_a_model_failure_is_raised_so_the_container_answers_500(handler, monkeypatch):
    """Only the caller's mistakes become 4xx; a broken model must stay a 5XX (and page)."""
    def broken(_):
        raise MemoryError("the model failed")

    monkeypatch.setattr(handler.model, "predict_proba", broken, raising=False)
    with pytest.raises(MemoryError):
        handler.invoke(json.dumps(GUIDE_SDK_REQUEST), "application/json", "application/json")


def test_handler_imports_only_what_the_image_has():
    import ast

    source = (ROOT / "inference" / "inference.py").read_text()
    modules = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
    assert modules <= {"codecs", "io", "json", "os", "warnings", "joblib", "numpy", "werkzeug", "scipy", "pandas", "sklearn"}


def test_handler_is_python39_syntax():
    """The image runs Python 3.9: no match statements, no `X | Y` at runtime."""
    import ast

    source = (ROOT / "inference" / "inference.py").read_text()
    ast.parse(source, feature_version=(3, 9))
