"""Cooking sessions: a recipe version cooked on one appliance, mirrored from the appliance's
`up/session` events, with its event log, live state, telemetry summary and the cook's rating."""
