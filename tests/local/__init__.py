"""Tests of the local endpoint: serving, capture, a shadow served locally."""
