from __future__ import annotations

from django.apps import AppConfig


class ComputeConfig(AppConfig):
    """Containers and nothing about jobs: the runtimes, instance types, framework images,
    serving containers, staged models, and the labels and names of what the studio starts.
    The bottom app above `studio`: it imports no other app of the project."""

    name = "compute"
