"""Measuring true alignment error on cases with a known transform."""
