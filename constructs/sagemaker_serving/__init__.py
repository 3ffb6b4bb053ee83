"""CDK constructs that serve a scikit-learn model on Amazon SageMaker.

Import the modules you need (`sagemaker_serving.model`, `.endpoint`, ...): this
package's `__init__` deliberately imports nothing, so the configuration can use
`sagemaker_serving.settings` without starting the CDK's jsii runtime.

The folder is `constructs/sagemaker_serving`; a package importable as `constructs`
would shadow the library of that name, so `pyproject.toml` maps this one.
"""
