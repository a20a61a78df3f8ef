"""Tests of `hare.cli`."""
