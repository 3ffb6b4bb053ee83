"""WSGI app equal to the one the sklearn 1.2-1 image serves (sagemaker_sklearn_container.serving:main),
built from sagemaker-containers 2.8.6.post2's beta API, minus nginx and the `pip install` of the code dir.
Env: SAGEMAKER_BASE_DIR (model = $BASE/model, code = $BASE/code), SAGEMAKER_PROGRAM, SAGEMAKER_SUBMIT_DIRECTORY."""
import collections
import collections.abc

collections.Mapping = collections.abc.Mapping  # removed in 3.10; sagemaker_containers._mapping uses it

import importlib, sys  # noqa: E402
import numpy as np  # noqa: E402
from sagemaker_containers import _env  # noqa: E402  (code_dir / model_dir follow SAGEMAKER_BASE_DIR)
from sagemaker_containers.beta.framework import content_types, encoders, env, files, transformer, worker  # noqa: E402


def prepare():  # what server.start does before gunicorn, without writing setup.py / pip-installing
    files.download_and_extract(env.ServingEnv().module_dir, _env.code_dir)  # s3://, *.tar.gz or a dir


def _image_input_fn(data, content_type):  # the image's default: decode, float32 for json/csv
    arr = encoders.decode(data, content_type)
    return arr.astype(np.float32) if content_type in content_types.UTF8_TYPES else arr


def _build():
    serving = env.ServingEnv()
    sys.path.append(_env.code_dir)
    user = importlib.import_module(serving.module_name)
    fn = lambda name, default=None: getattr(user, name, default)  # noqa: E731
    if fn("transform_fn") and (fn("input_fn") or fn("predict_fn") or fn("output_fn")):
        raise ValueError("Cannot use transform_fn implementation with input_fn, predict_fn, and/or output_fn")
    # every fn passed is truthy, so Transformer wraps each one: any exception -> ClientError -> Flask 500
    kw = {"transform_fn": fn("transform_fn")} if fn("transform_fn") else {
        "input_fn": fn("input_fn", _image_input_fn),
        "predict_fn": fn("predict_fn", lambda data, model: model.predict(data)),
        "output_fn": fn("output_fn", lambda p, accept: worker.Response(encoders.encode(p, accept), mimetype=accept))}
    t = transformer.Transformer(model_fn=fn("model_fn", transformer.default_model_fn), **kw)
    t.initialize()  # model_fn($SAGEMAKER_BASE_DIR/model)
    return worker.Worker(transform_fn=t.transform, module_name=serving.module_name,
                         execution_parameters_fn=fn("execution_parameters_fn"))


_app = None


def app(environ, start_response):  # like the image: built lazily, on each worker's first request
    global _app
    if _app is None:
        _app = _build()
    return _app(environ, start_response)


def render_nginx_config(path):  # what server.start writes to /etc/sagemaker-nginx.conf, by the library's own code
    from sagemaker_containers import _server

    _server.nginx_config_file = path
    _server._create_nginx_config(env.ServingEnv())  # port: SAGEMAKER_BIND_TO_PORT; timeout: SAGEMAKER_MODEL_SERVER_TIMEOUT
