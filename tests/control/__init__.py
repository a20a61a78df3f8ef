"""Tests of `hare.control`."""
