"""The one shape the API gives every transition log (`studio.transitions.TransitionLog`): a
job's transitions, a package's history, an endpoint's events and its instances' history all
answer `from_status`, `to_status`, `message`, `actor` and `at`. An app's log adds its own
fields (and keeps those its earlier clients read) in a subclass with its own `ref_name`, the
schema's component name."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class TransitionSerializer(serializers.Serializer[Any]):
    from_status = serializers.CharField(help_text='"" for the row that records a creation')
    to_status = serializers.CharField()
    message = serializers.CharField(help_text="why")
    actor = serializers.CharField(
        source="actor_name", help_text="a username, or `system` (`system: <component>`)"
    )
    at = serializers.DateTimeField(source="created_at")
