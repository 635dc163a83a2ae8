"""The OpenAPI schema's own rules: component names, and the bearer-token scheme
(drf-spectacular)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class StudioAutoSchema(AutoSchema):
    """Names a serializer nested in a view after the view: `EndpointListApi.InputSerializer`
    is the component `EndpointListInput`. Every view has its own `InputSerializer` and
    `OutputSerializer` (one APIView per operation), and drf-spectacular's default, the bare
    class name, would give them all one component `Input`, each overwriting the others."""

    def get_serializer_name(self, serializer: serializers.Serializer[Any], direction: Any) -> str:
        parts = [part for part in type(serializer).__qualname__.split(".") if part != "<locals>"]
        if len(parts) == 1:
            return parts[0]
        outer = [part.removesuffix("Api").removesuffix("Serializer") for part in parts[:-1]]
        return "".join([*outer, parts[-1]])


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "studio.accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from `studiolo token create` or Settings → API tokens.",
        }
