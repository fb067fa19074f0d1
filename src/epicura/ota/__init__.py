"""Firmware releases and staged OTA rollouts."""
