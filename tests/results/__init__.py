"""Tests of `hare.results`."""
