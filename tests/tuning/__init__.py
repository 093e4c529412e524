"""Tests of flavortag tune (the hyperparameter search)."""
