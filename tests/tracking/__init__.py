"""Tests of flavortag.tracking (the only module that imports MLflow)."""
