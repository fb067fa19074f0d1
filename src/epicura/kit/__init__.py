"""Shared machinery with no business rules; imports no feature module."""
