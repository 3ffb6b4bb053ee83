"""Tests of watching a live model: the monitor, its stack, comparisons, shadows."""
