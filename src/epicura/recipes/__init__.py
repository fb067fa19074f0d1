"""Recipes, their immutable versions, step programs, search, scaling and images."""
