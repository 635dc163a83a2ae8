"""Every state change of a job goes through these services."""
