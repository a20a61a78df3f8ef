"""Tests of `hare.worker`."""
