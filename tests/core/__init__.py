"""Tests of `hare.core`."""
