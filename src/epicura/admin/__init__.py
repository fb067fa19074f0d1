"""Admin API: users now; fleet, releases and analytics as their modules land."""
