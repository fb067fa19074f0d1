"""Appliances: factory import, provisioning, pairing, status, commands and alerts."""
