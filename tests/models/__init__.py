"""Tests of flavortag's models layer."""
