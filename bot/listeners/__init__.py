"""Bolt listeners, grouped by kind."""
