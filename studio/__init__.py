"""Studiolo: a self-hosted ML studio."""
