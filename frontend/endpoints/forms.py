"""Forms of the endpoint pages: deploy a package, update an endpoint to another package.

They parse and shape input only. Which packages may be served, how many instances, which
types exist: the endpoints services decide, and their errors are shown on the fields here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from django import forms

from compute.instance_types import instance_types
from endpoints.services.models import MAX_INSTANCES
from studio.errors import StudioloError

# The services name the fields of a production variant `variants.<field>`; these forms
# have one variant, whose fields sit at the top level.
SERVICE_FIELDS = {
    "variants.instance_type": "instance_type",
    "variants.instance_count": "instance_count",
    "variants.model": "model",
    "instance_type": "instance_type",
}


def add_endpoint_error(form: forms.Form, error: StudioloError) -> None:
    """Show a service's error next to the field it is about, or above the form."""
    field = SERVICE_FIELDS.get(error.field or "", error.field)
    form.add_error(field if field in form.fields else None, error.message)


class _VariantFields(forms.Form):
    instance_type = forms.ChoiceField(label="Instance type")
    instance_count = forms.IntegerField(
        label="Instances",
        initial=1,
        # A hint for the browser; the service enforces its own limits.
        widget=forms.NumberInput(attrs={"min": 1, "max": MAX_INSTANCES}),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        types = instance_types()
        field = cast(forms.ChoiceField, self.fields["instance_type"])
        field.choices = [
            (
                name,
                f"{name} ({spec.cpus:g} CPU · {spec.memory_mb} MB"
                + (f" · {spec.gpus} GPU" if spec.gpus else "")
                + ")",
            )
            for name, spec in sorted(types.items())
        ]
        field.initial = "ml.local.small" if "ml.local.small" in types else next(iter(types), "")


class DeployForm(_VariantFields):
    """On an Approved package's page: a new endpoint serving it."""

    name = forms.CharField(
        label="Endpoint name",
        max_length=63,
        help_text="Letters, digits and hyphens; clients call /endpoints/<name>/invocations.",
    )
    field_order = ("name", "instance_type", "instance_count")


class UpdateForm(_VariantFields):
    """On an endpoint's page: serve another package (a new config is rolled out)."""

    # A plain field shown as a select: a package rejected since the page was drawn is
    # refused by the service, with its reason, rather than by the form's choice list.
    model = forms.CharField(label="Model (group/version)", widget=forms.Select)
    field_order = ("model", "instance_type", "instance_count")

    def __init__(self, *args: Any, packages: Sequence[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        widget = cast(forms.Select, self.fields["model"].widget)
        widget.choices = [(ref, ref) for ref in packages] or [("", "no approved package")]
