"""Tests of flavortag's io layer."""
