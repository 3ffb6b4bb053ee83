"""What the SageMaker scikit-learn serving container does with a model, outside it.

The archive reader, the handler loader, the preflight and the emulation of the
container's HTTP stack live here, beside `inference/`, because the synth (`stacks/`),
the operations CLI (`endpointctl/`), the benchmarks and the tests all need them.
This package imports neither the CDK nor the CLI: `app.py` → `stacks/` →
`constructs/` and `endpointctl/` both sit above it (tests/cli/test_layout.py checks it).
"""
