"""Watching a live endpoint: captured traffic read in SageMaker's formats, checked against the
model's baseline (drift, data quality, realized quality) and compared across variants.
Runs unchanged in the scikit-learn serving image (Python 3.9, numpy): imports nothing of the project."""
