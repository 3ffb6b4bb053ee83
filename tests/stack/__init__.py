"""Tests of the stacks: templates, production rules, hardening, snapshots, environments, the container contract."""
