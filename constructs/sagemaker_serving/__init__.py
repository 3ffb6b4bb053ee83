"""CDK constructs that serve a scikit-learn model on Amazon SageMaker.

Import the modules you need (`sagemaker_serving.model`, `.endpoint`, ...): this
package's `__init__` deliberately imports nothing. The settings they take are
`serving_config.settings`, which imports no CDK.

The folder is `constructs/sagemaker_serving`; a package importable as `constructs`
would shadow the library of that name, so `pyproject.toml` maps this one.
"""
