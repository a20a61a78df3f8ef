"""Tests of `hare.testing`."""
