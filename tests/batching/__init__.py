"""Tests of flavortag's batching layer."""
