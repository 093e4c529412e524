"""Tests of flavortag's reporting layer."""
