"""The handler under generated requests: whatever the body, the content type or the
charset, the answer is a 200 or a 4xx with a JSON reason — never an exception, which
the container would turn into a 500 (and a 5XX alarm)."""

from __future__ import annotations

import encodings
import encodings.aliases
import json
import pkgutil

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CLIENT_STATUSES = (400, 406, 413, 415)
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Numbers of any magnitude: float64's whole range, float32's edge, integers past 64 bits.
FLOAT32_MAX = float(np.finfo(np.float32).max)
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=FLOAT32_MAX * 0.999, max_value=FLOAT32_MAX * 1.001),
    st.integers(),
    st.integers(min_value=2**63 - 10, max_value=2**70),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([0.0, -0.0, 5e-324, 1e308, -1e308, 1e39, -1e39]),
)
SCALARS = NUMBERS | st.none() | st.booleans() | st.text(max_size=5)
JSON_VALUES = st.recursive(SCALARS, lambda children: st.lists(children, max_size=6)
                           | st.dictionaries(st.sampled_from(["instances", "x"]), children, max_size=2), max_leaves=40)
ROWS = st.lists(st.lists(NUMBERS, min_size=5, max_size=5), min_size=1, max_size=4)
CODEC_NAMES = sorted(set(encodings.aliases.aliases) | set(encodings.aliases.aliases.values())
                     | {module.name for module in pkgutil.iter_modules(encodings.__path__)} | {"undefined", "klingon", ""})


def json_text(value) -> str:
    return json.dumps(value)  # NaN and Infinity as Python writes them: json.loads reads them back


def fits_float32(value) -> bool:
    """What the forest can take: a number that stays finite cast to float32."""
    try:
        number = float(value)
    except OverflowError:  # an integer past float64
        return False
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float32(number)))


def csv_field(value) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def assert_answered(result) -> None:
    if isinstance(result, tuple):
        body, content_type = result
        assert content_type in ("application/json", "text/csv") and isinstance(body, str)
        return
    assert result.status_code in CLIENT_STATUSES, result.get_data()
    reason = json.loads(result.get_data())
    assert reason["error"] and reason["status"] == result.status_code


@PROPERTY_SETTINGS
@given(document=JSON_VALUES, accept=st.sampled_from(["application/json", "text/csv", "*/*", "image/png"]))
def test_any_json_document(loaded_handler, document, accept):
    assert_answered(loaded_handler.invoke(json_text(document), "application/json", accept))
    assert_answered(loaded_handler.invoke(json_text({"instances": document}), "application/json", accept))


@PROPERTY_SETTINGS
@given(rows=ROWS)
def test_rows_of_numbers_of_any_magnitude(loaded_handler, rows):
    """Finite values inside the model's float32 range are answered 200; the rest 400."""
    result = loaded_handler.invoke(json_text({"instances": rows}), "application/json", "text/csv")
    assert_answered(result)
    fits = all(fits_float32(value) for row in rows for value in row)
    assert isinstance(result, tuple) == fits, (rows, result if isinstance(result, tuple) else result.get_data())
    csv = "\n".join(",".join(map(csv_field, row)) for row in rows)
    assert_answered(loaded_handler.invoke(csv, "text/csv", "text/csv"))


@PROPERTY_SETTINGS
@given(body=st.one_of(st.text(max_size=200), st.lists(st.lists(
    st.sampled_from(["1", "0.5", "-2e3", "", "nan", "x", " ", "inf", "1e39", "-1e400", "1_0", '"1"', "0x1p3", "\t2"]) | NUMBERS.map(csv_field),
    max_size=7), max_size=6).map(lambda rows: "\n".join(",".join(r) for r in rows))),
    line_end=st.sampled_from(["", "\n", "\r\n"]))
def test_any_csv_body(loaded_handler, body, line_end):
    assert_answered(loaded_handler.invoke(body + line_end, "text/csv", "text/csv"))


@PROPERTY_SETTINGS
@given(charset=st.sampled_from(CODEC_NAMES) | st.text(max_size=12), body=st.binary(max_size=60)
       | st.sampled_from([b"1,2,3,4,5", b'{"instances": [[1, 2, 3, 4, 5]]}']),
       media_type=st.sampled_from(["text/csv", "application/json"]))
def test_every_codec_name(loaded_handler, charset, body, media_type):
    """The charset comes from the caller: unknown, non-text ('rot13'), refusing
    ('undefined'), NUL-bearing or domain-name codecs are all a 400."""
    assert_answered(loaded_handler.invoke(body, f"{media_type}; charset={charset}", "application/json"))


@PROPERTY_SETTINGS
@given(data=st.data(), rows=st.integers(min_value=1, max_value=30), classes=st.integers(min_value=1, max_value=4),
       label_kind=st.sampled_from(["int", "str", "bool", "float"]))
def test_csv_lines_are_one_percent_format_per_row(loaded_handler, data, rows, classes, label_kind):
    """The CSV answer, built from one join over all cells for speed, is byte for byte the
    '%s,%r,...' line per row it was before (what Batch Transform callers read)."""
    floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1.0, 1e-05, 5e-324, 1 / 3])
    probabilities = np.array(data.draw(st.lists(st.lists(floats, min_size=classes, max_size=classes), min_size=rows, max_size=rows)),
                             dtype=np.float64).reshape(rows, classes)
    label_values = {"int": st.integers(-(2**63), 2**63 - 1), "str": st.text(max_size=6), "bool": st.booleans(), "float": floats}
    labels = np.array(data.draw(st.lists(label_values[label_kind], min_size=rows, max_size=rows)))
    before = "\n".join(("%s" + ",%r" * classes) % (label, *row) for label, row in zip(labels.tolist(), probabilities.tolist()))
    prediction = loaded_handler.module.Prediction(labels, probabilities)
    assert loaded_handler.module.output_fn(prediction, "text/csv") == (before, "text/csv")
