"""The configuration core: `cdk.json`'s settings parsed once into typed objects
(`config`, `settings`), the names derived from them (`names`), their JSON Schema
(`schema`), the model registry resolver (`model_package`) and where the
project's own files are (`paths`: the checkout, the handler folder).

No CDK import: the CLI reads it without starting the CDK's jsii runtime, and the
stacks and constructs take what it parses.
"""
