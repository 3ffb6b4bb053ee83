"""Tests of the inference handler: called directly, generated input, parity with the image, archives, the sandbox."""
