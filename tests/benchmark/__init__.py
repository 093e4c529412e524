"""Tests of the shared benchmark tasks (issue 27)."""
