"""Inference handler for the fraud model, loaded by the SageMaker scikit-learn container.

Runs unchanged in the `1.2-1` serving image: Python 3.9, scikit-learn 1.2.1, numpy,
joblib and Werkzeug, nothing else. The container calls, per request,
`output_fn(predict_fn(input_fn(body, content_type), model), accept)`.

Why bad requests are not raised: the container answers *any* exception from these
functions with 500 and an HTML page, so a caller's mistake would look like a broken
model and wake the error alarms. Instead `input_fn` returns a `RequestError`,
`predict_fn` passes it through, and `output_fn` turns it into a response object with
a 4xx status and a JSON reason, which the container sends as it is.

Requests:
  application/json  {"instances": [[f1, ..., fn], ...]}
  text/csv          one record per line, no header (what Batch Transform sends)
Responses:
  application/json  {"predictions": [...], "probabilities": [[...], ...]}
  text/csv          one line per input line: label,p(class 0),p(class 1),...
"""

import codecs
import io
import json
import os
import warnings

import joblib
import numpy as np

MODEL_FILENAME = "model.joblib"
JSON_TYPE = "application/json"
CSV_TYPE = "text/csv"
SUPPORTED_TYPES = (JSON_TYPE, CSV_TYPE)
# InvokeEndpoint takes at most 6 MB; Batch Transform mini-batches can be up to 100 MB.
# The stack sets the limit of each model it creates.
MAX_REQUEST_BYTES = int(os.environ.get("HANDLER_MAX_REQUEST_BYTES", str(6 * 1024 * 1024)))


# Charsets Python can decode that are not character sets of text: domain-name label
# encodings. punycode's decoder is also quadratic (a 6 MB body would take minutes and
# hit the worker timeout, a 5xx).
NOT_TEXT_CHARSETS = ("punycode", "idna")


class RequestError:
    """A request the handler refuses; becomes a 4xx response in `output_fn`.
    `row` is the index of the offending row in the request (a CSV body's line - 1)."""

    __slots__ = ("status", "message", "row")

    def __init__(self, status, message, row=None):
        self.status = status
        self.message = message
        self.row = row


class Prediction:
    __slots__ = ("labels", "probabilities")

    def __init__(self, labels, probabilities):
        self.labels = labels
        self.probabilities = probabilities


def model_fn(model_dir):
    model = joblib.load(os.path.join(model_dir, MODEL_FILENAME))
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise TypeError(f"{MODEL_FILENAME} holds a {type(model).__name__}, which has no predict_proba/classes_")
    return model


def _media_type(header):
    """'text/csv; charset=utf-8' -> ('text/csv', 'utf-8')."""
    media_type, _, params = (header or "").partition(";")
    charset = "utf-8"
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    return media_type.strip().lower(), charset


def input_fn(request_body, request_content_type):
    media_type, charset = _media_type(request_content_type)
    if media_type not in SUPPORTED_TYPES:
        return RequestError(415, f"content type {request_content_type!r} is not supported; use {' or '.join(SUPPORTED_TYPES)}")
    # The container hands over str for exactly 'application/json' or 'text/csv', bytes otherwise.
    if isinstance(request_body, (bytes, bytearray)):
        if len(request_body) > MAX_REQUEST_BYTES:
            return _too_large(len(request_body))
        request_body = _decode(request_body, charset)
        if isinstance(request_body, RequestError):
            return request_body
    elif len(request_body) > MAX_REQUEST_BYTES:  # characters >= bytes/4; check the encoded size only when close
        size = len(request_body.encode("utf-8"))
        if size > MAX_REQUEST_BYTES:
            return _too_large(size)
    if media_type == JSON_TYPE:
        return _parse_json(request_body)
    return _parse_csv(request_body)


def _decode(body, charset):
    """The body as text, or a 400: any failure to decode is the caller's charset or bytes."""
    try:
        if codecs.lookup(charset).name in NOT_TEXT_CHARSETS:
            return RequestError(400, f"charset {charset!r} is not a character set for text; use utf-8")
        return body.decode(charset)
    # UnicodeError (a ValueError) for bytes the codec refuses or for codecs such as
    # 'undefined'; LookupError for unknown or non-text codecs ('rot13', 'base64');
    # ValueError for a name with a NUL in it.
    except (ValueError, LookupError) as error:
        return RequestError(400, f"body is not valid {charset!r} text: {type(error).__name__}: {error}")


def _too_large(size):
    return RequestError(413, f"body is {size} bytes; the limit is {MAX_REQUEST_BYTES} bytes")


def _parse_json(text):
    try:
        document = json.loads(text)
    except ValueError as error:
        return RequestError(400, f"body is not valid JSON: {error}")
    except RecursionError:  # not a ValueError: it would be a 500
        return RequestError(400, "body is JSON nested too deeply; send {\"instances\": [[feature, ...], ...]}")
    if not isinstance(document, dict) or "instances" not in document:
        return RequestError(400, 'JSON body must be an object {"instances": [[feature, ...], ...]}')
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        return RequestError(400, '"instances" must be a non-empty list of rows')
    try:
        # No dtype: strings, booleans and nulls then show up in the array's dtype
        # instead of being coerced ("1.5" -> 1.5, true -> 1.0) into a silent answer.
        array = np.asarray(instances)
    except ValueError:
        return RequestError(400, '"instances" rows must be lists of numbers, all with the same number of features')
    if array.ndim != 2:
        return RequestError(400, '"instances" must be a list of rows, each a list of numbers, e.g. [[0.5, 1.2, 0.3, 0.8, 0.1]]')
    if array.dtype.kind == "O":  # integers beyond 64 bits, or nulls, dicts...
        array = _object_rows_as_floats(array)
        if isinstance(array, RequestError):
            return array
    # numpy folds true/false into numbers when they sit beside numbers; look for them only
    # when the text has one of the words (a C-speed scan on the common path).
    if array.dtype.kind not in "iuf" or (("true" in text or "false" in text) and _has_bool(instances)):
        return _not_numbers(_first_row_with_a_non_number(instances))
    return _finite(array.astype(np.float64, copy=False), "instances")


def _not_numbers(row):
    return RequestError(400, f'"instances" row {row} holds a value that is not a number; '
                        "rows hold numbers only (no strings, booleans or nulls)", row)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _first_row_with_a_non_number(rows):
    return next((i for i, row in enumerate(rows) if not all(map(_is_number, row))), 0)


def _object_rows_as_floats(array):
    """Rows numpy could not type: integers too long for 64 bits become floats (as
    1e30 would be); anything else is not a number."""
    for (row, feature), value in np.ndenumerate(array):
        if not _is_number(value):
            return _not_numbers(row)
        try:
            float(value)
        except OverflowError:
            return RequestError(400, f'"instances" row {row} feature {feature} is an integer of {len(str(value))} digits, '
                                f"beyond the float64 range (magnitude up to {np.finfo(np.float64).max!s})", row)
    return array.astype(np.float64)


def _has_bool(rows):
    return any(isinstance(value, bool) for row in rows for value in row)


def _parse_csv(text):
    if not text.strip():
        return RequestError(400, "CSV body is empty; send one record per line")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            array = np.loadtxt(io.StringIO(text), delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except ValueError as error:
        return _csv_error(text, error)
    # loadtxt skips blank lines; Batch Transform needs one output line per input line.
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    if array.shape[0] != lines:
        blank = next(i for i, line in enumerate(text.split("\n")) if not line.strip())
        return RequestError(400, f"CSV line {blank + 1} is blank; send one record per line (Batch Transform "
                            "answers one line per input line)", blank)
    return _finite(array, "CSV body")


def _csv_error(text, error):
    """Name the line loadtxt refused (its own message counts rows from 0 or from 1
    depending on the error): only refused requests pay for this second pass."""
    width = None
    for row, line in enumerate(text.split("\n")[: text.count("\n") + (not text.endswith("\n"))]):
        if not line.strip():
            return RequestError(400, f"CSV line {row + 1} is blank; send one record per line", row)
        fields = line.split(",")
        if width is not None and len(fields) != width:
            return RequestError(400, f"CSV line {row + 1} has {len(fields)} values; the lines before it have {width}", row)
        width = len(fields)
        for field in fields:
            try:
                float(field)
            except ValueError:
                return RequestError(400, f"CSV line {row + 1} holds {field.strip()[:40]!r}, which is not a number", row)
    return RequestError(400, f"CSV body is not numeric records: {error}")


def _finite(array, what):
    if array.shape[0] == 0 or array.shape[1] == 0:
        return RequestError(400, f"{what} is an empty batch")
    if not np.isfinite(array).all():
        row = int(np.argwhere(~np.isfinite(array))[0][0])
        return RequestError(400, f"{what} row {row} holds NaN or infinity", row)
    return array


def _input_dtype(model):
    """The float type the model computes in. scikit-learn's trees, and the forests and
    boostings made of them, cast their input to `sklearn.tree`'s DTYPE (float32) and
    then refuse what became infinite with a ValueError: a 500. Other models keep float64."""
    pending = [model]
    while pending:
        estimator = pending.pop()
        if hasattr(estimator, "tree_"):
            from sklearn.tree._tree import DTYPE

            return np.dtype(DTYPE)
        for name in ("steps", "estimators_", "estimator_", "estimators"):
            children = getattr(estimator, name, None)
            if isinstance(children, np.ndarray):
                pending.extend(children.ravel())
            elif isinstance(children, (list, tuple)):
                pending.extend(c[-1] if isinstance(c, tuple) else c for c in children)
            elif children is not None and hasattr(children, "get_params"):
                pending.append(children)
    return np.dtype(np.float64)


def _in_model_range(array, dtype):
    """The rows cast as the model will cast them, or a 400 naming the first value that
    does not fit (float32 tops out near 3.4e38; JSON and CSV numbers reach 1.8e308)."""
    if array.dtype == dtype:
        return array
    with np.errstate(over="ignore"):
        cast = array.astype(dtype)
    if np.isfinite(cast).all():
        return cast
    row, feature = (int(i) for i in np.argwhere(~np.isfinite(cast))[0])
    return RequestError(400, f"row {row} feature {feature} (counting from 0) is {float(array[row, feature])!r}, "
                        f"beyond the model's {dtype.name} range (magnitude up to {np.finfo(dtype).max!s})", row)


def predict_fn(input_data, model):
    if isinstance(input_data, RequestError):
        return input_data
    expected = getattr(model, "n_features_in_", None)
    if expected is not None and input_data.shape[1] != expected:
        return RequestError(400, f"each row must have {expected} features; got {input_data.shape[1]}")
    input_data = _in_model_range(input_data, _input_dtype(model))
    if isinstance(input_data, RequestError):
        return input_data
    # One pass of the model: the labels are the most probable classes.
    probabilities = model.predict_proba(input_data)
    return Prediction(model.classes_[probabilities.argmax(axis=1)], probabilities)


def _negotiate(accept):
    """The first supported type in an Accept header; None if there is none."""
    for part in (accept or JSON_TYPE).split(","):
        media_type, _ = _media_type(part)
        if media_type in SUPPORTED_TYPES:
            return media_type
        if media_type in ("*/*", "application/*", ""):
            return JSON_TYPE
        if media_type == "text/*":
            return CSV_TYPE
    return None


def output_fn(prediction, accept):
    if isinstance(prediction, RequestError):
        return _error_response(prediction)
    media_type = _negotiate(accept)
    if media_type == JSON_TYPE:
        body = json.dumps({"predictions": prediction.labels.tolist(), "probabilities": prediction.probabilities.tolist()})
        return body, JSON_TYPE
    if media_type == CSV_TYPE:
        return _csv_lines(prediction.labels, prediction.probabilities), CSV_TYPE
    return _error_response(RequestError(406, f"accept type {accept!r} is not supported; use {' or '.join(SUPPORTED_TYPES)}"))


def _csv_lines(labels, probabilities):
    """'label,p0,p1,...' per row, no trailing newline (with AssembleWith=Line, Batch
    Transform ends each response with one). repr() keeps every digit (round-trips).
    Most of the time is repr() itself; the rest is one str.join over every cell, laid
    out by slice assignment (the ',' and '\n' cells stay shared): ~15% faster than one
    %-format per line."""
    rows, columns = probabilities.shape
    width = 2 * columns + 2  # label, then ',' and a probability per class, then '\n'
    cells = [","] * (rows * width)
    cells[0::width] = map(str, labels.tolist())
    reprs = list(map(repr, probabilities.ravel().tolist()))
    for column in range(columns):
        cells[2 + 2 * column::width] = reprs[column::columns]
    cells[width - 1::width] = ["\n"] * rows
    cells.pop()  # the last '\n'
    return "".join(cells)


def _error_response(error):
    # Imported here: werkzeug (in the image, under Flask) costs ~30 ms of cold start,
    # and only refused requests need it.
    from werkzeug.wrappers import Response

    reason = {"error": error.message, "status": error.status}
    if error.row is not None:
        reason["row"] = error.row
    body = json.dumps(reason)
    return Response(body, status=error.status, mimetype=JSON_TYPE)
