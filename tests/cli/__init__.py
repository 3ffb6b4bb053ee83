"""Tests of the CLI and the project around it: commands, documented commands, docs, layout."""
