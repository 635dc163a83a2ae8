"""The OpenAPI schema's own rules: component names, the error answers every operation may
give (in the API's one error shape), and the bearer-token scheme (drf-spectacular)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers


class ErrorDetailSerializer(serializers.Serializer[Any]):
    code = serializers.CharField(help_text="stable and machine-readable: invalid, not_found, ...")
    message = serializers.CharField(help_text="for people; names the field when there is one")
    field = serializers.CharField(allow_null=True, help_text="the input at fault, if one is")


class ErrorSerializer(serializers.Serializer[Any]):
    error = ErrorDetailSerializer()


# The answers that studio.api.exceptions gives, and which operations may give them.
ERRORS_OF_EVERY_OPERATION = {
    "400": "The request is refused; `field` names the input at fault.",
    "401": "No valid API token or session.",
    "403": "Your role in the team does not allow it.",
    "404": "Not found, or of a team you are not in.",
    "503": "A dependency is unavailable, or a search ran past its time limit.",
}
ERRORS_OF_A_CHANGE = {"409": "It conflicts with the object's current state or name."}
ERRORS_OF_A_BODY = {"413": "The request body is larger than the server reads."}


def results_of(serializer: type[serializers.Serializer[Any]], name: str) -> Any:
    """The schema of a whole, unpaged list as the API answers it: `{"results": [...]}`.
    (Paged lists declare their `pagination_class` instead, and drf-spectacular describes
    the page: `next`, `previous`, `results`.)"""
    return inline_serializer(name, {"results": serializer(many=True)})


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

    def _map_serializer_field(
        self, field: Any, direction: Any, bypass_extensions: bool = False
    ) -> dict[str, Any]:
        """An input string that may not be blank says so (`minLength: 1`): DRF refuses "" for
        every CharField without `allow_blank`, and the schema did not tell."""
        schema: dict[str, Any] = super()._map_serializer_field(  # type: ignore[no-untyped-call]
            field, direction, bypass_extensions
        )
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and not field.allow_blank
            and schema.get("type") == "string"
            and "minLength" not in schema
        ):
            schema["minLength"] = 1
        return schema

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        errors = dict(ERRORS_OF_EVERY_OPERATION)
        if self.method in ("POST", "PUT", "PATCH", "DELETE"):
            errors |= ERRORS_OF_A_CHANGE
        if self.method in ("POST", "PUT", "PATCH"):
            errors |= ERRORS_OF_A_BODY
        for status, description in sorted(errors.items()):
            answer = OpenApiResponse(ErrorSerializer, description=description)
            responses.setdefault(status, self._get_response_for_code(answer, status))  # type: ignore[no-untyped-call]
        return responses


class BearerTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "studio.accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from `studiolo token create` or Settings → API tokens.",
        }
