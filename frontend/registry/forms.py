"""The register-from-a-job form. It parses and shapes input; what may be registered is the
registration service's to say."""

from __future__ import annotations

from typing import Any, cast

from django import forms

from compute.frameworks import FRAMEWORK_IMAGES
from registry.services.registration import MAX_APPROVALS_REQUIRED

NEW_GROUP = "__new__"


class RegisterForm(forms.Form):
    group = forms.ChoiceField(label="Model group")
    new_group = forms.CharField(
        label="New group name",
        required=False,
        max_length=63,
        help_text="Letters, digits and hyphens; used when “New group…” is chosen.",
    )
    approvals_required = forms.IntegerField(
        label="Approvals required",
        min_value=1,
        max_value=MAX_APPROVALS_REQUIRED,
        initial=1,
        required=False,
        help_text="For a new group: distinct approvals each version needs.",
    )
    framework = forms.ChoiceField(label="Framework", required=False)
    image = forms.CharField(
        label="Inference image",
        required=False,
        help_text="Instead of a framework: an image that serves the model.",
    )
    entry_point = forms.CharField(
        label="Entry point",
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "inference.py"}),
    )
    description = forms.CharField(
        label="Description", required=False, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args: Any, groups: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(name, name) for name in groups] + [(NEW_GROUP, "New group…")]
        group_field = cast(forms.ChoiceField, self.fields["group"])
        group_field.choices = choices
        group_field.initial = groups[0] if groups else NEW_GROUP
        cast(forms.ChoiceField, self.fields["framework"]).choices = [
            ("", "— an image instead —")
        ] + [(name, name) for name in sorted(FRAMEWORK_IMAGES)]
        self.fields["framework"].initial = "sklearn" if "sklearn" in FRAMEWORK_IMAGES else ""
