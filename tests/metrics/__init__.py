"""Tests of flavortag's metrics layer."""
