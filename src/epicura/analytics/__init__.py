"""Fleet analytics for the admins: SQL aggregates over sessions, appliances and rollups."""
