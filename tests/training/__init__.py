"""Tests of flavortag's training layer."""
