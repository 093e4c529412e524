"""Tests of flavortag's apps layer."""
