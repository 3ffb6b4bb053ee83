"""Tests of releasing a model: the plan, the registry, the pipeline, promotion, rollback, the workflows, the demo."""
