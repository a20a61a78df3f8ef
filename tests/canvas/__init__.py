"""Tests of `hare.canvas`."""
