"""endpointctl: the operations tool for the fraud model's SageMaker endpoint."""
