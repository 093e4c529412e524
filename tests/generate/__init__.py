"""Tests of flavortag's generate layer."""
