# A handler that shows what the serving layer hands it and sends back whatever kind of
# result the request asks for, so the parity test covers the container's plumbing, not
# only our handler: str vs bytes bodies, content and accept types, every kind of
# output_fn result, and exceptions from each function.
import json


def model_fn(model_dir):
    return {"model_dir_given": bool(model_dir)}


def input_fn(request_body, request_content_type):
    text = request_body if isinstance(request_body, str) else request_body.decode("latin-1")
    if text == "raise in input_fn":
        raise ValueError(text)
    return {"body_type": type(request_body).__name__, "body": text, "content_type": request_content_type}


def predict_fn(input_data, model):
    if input_data["body"] == "raise in predict_fn":
        raise RuntimeError(input_data["body"])
    return dict(input_data, model=model)


def output_fn(prediction, accept):
    prediction["accept"] = accept
    ask = prediction["body"]
    if ask == "raise in output_fn":
        raise KeyError(ask)
    if ask == "return a str":
        return "a plain string"
    if ask == "return bytes":
        return b"\x00raw bytes"
    if ask == "return a dict":
        return prediction
    if ask == "return None":
        return None
    if ask == "return a 201 response":
        from werkzeug.wrappers import Response

        return Response("created", status=201, mimetype="text/plain", headers={"X-Echo": "yes"})
    if ask == "return a bytes tuple":
        return b"\x00\x01", "application/octet-stream"
    if ask == "return a text/csv tuple":
        return "a,b", "text/csv"
    if ask == "return a tuple whose type has a charset":
        return "a,b", "text/csv; charset=utf-8"
    if ask == "return an XML tuple":
        return "<a/>", "application/xml"
    if ask == "return a tuple without a type":
        return "{}", None
    if ask == "return a three-item tuple":
        return "a", "text/plain", "ignored"
    if ask == "return a one-item tuple":
        return ("a",)
    if ask == "return a bytearray":
        return bytearray(b"raw")
    if ask == "return a list":
        return ["a"]
    if ask == "return a number as the body":
        return 42, "application/json"
    return json.dumps(prediction, sort_keys=True), "application/json"
