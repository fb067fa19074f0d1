"""Telemetry: raw samples, rollups, latest sample and the queries over them."""
