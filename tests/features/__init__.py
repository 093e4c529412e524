"""Tests of flavortag's features layer."""
