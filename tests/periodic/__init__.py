"""Tests of `hare.periodic`."""
