"""Epicura Cloud."""
