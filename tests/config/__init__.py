"""Tests of the configuration: parsing, preflight, generated configs, the schema."""
