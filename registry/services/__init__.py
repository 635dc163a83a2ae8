"""Every change to model package groups and packages goes through these services."""
