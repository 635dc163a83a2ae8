"""The new-pipeline and update-definition forms. They read the definition from an uploaded
file or pasted JSON; whether it is a pipeline is the pipelines service's to say."""

from __future__ import annotations

from typing import Any

from django import forms

from pipelines.definition import MAX_DEFINITION_BYTES
from pipelines.services import MAX_DESCRIPTION, PIPELINE_NAME_RULE

# A file may hold white space the canonical JSON does not count (the service measures that);
# four times the limit still keeps a hostile upload from filling memory.
MAX_UPLOAD_BYTES = 4 * MAX_DEFINITION_BYTES


class DefinitionForm(forms.Form):
    definition_file = forms.FileField(
        label="Definition file",
        required=False,
        help_text="pipeline.json, as Pipeline(...).definition() or studiolo's builder writes it.",
        widget=forms.ClearableFileInput(attrs={"accept": "application/json,.json"}),
    )
    definition_text = forms.CharField(
        label="…or paste the definition JSON",
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "mono"}),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        upload = data.get("definition_file")
        text = data.get("definition_text") or ""
        if upload and text.strip():
            self.add_error("definition_text", "Give a file or pasted JSON, not both.")
        elif upload:
            if upload.size > MAX_UPLOAD_BYTES:
                self.add_error(
                    "definition_file", f"The file is larger than {MAX_UPLOAD_BYTES} bytes."
                )
            else:
                try:
                    data["definition"] = upload.read().decode("utf-8")
                except UnicodeDecodeError:
                    self.add_error("definition_file", "The file is not UTF-8 text.")
        elif text.strip():
            data["definition"] = text
        return data

    def definition_field(self) -> str:
        """The field the definition came from: where its errors are shown."""
        return "definition_file" if self.files.get("definition_file") else "definition_text"


class PipelineCreateForm(DefinitionForm):
    name = forms.CharField(label="Name", max_length=256, help_text=PIPELINE_NAME_RULE.capitalize())
    description = forms.CharField(
        label="Description",
        required=False,
        max_length=MAX_DESCRIPTION,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    field_order = ["name", "description", "definition_file", "definition_text"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors and "definition" not in data:
            self.add_error("definition_file", "Give the definition: a file or pasted JSON.")
        return data


class PipelineUpdateForm(DefinitionForm):
    version_description = forms.CharField(
        label="What changed",
        required=False,
        max_length=MAX_DESCRIPTION,
        widget=forms.TextInput(attrs={"placeholder": "e.g. a stricter accuracy threshold"}),
    )
    description = forms.CharField(
        label="Pipeline description",
        required=False,
        max_length=MAX_DESCRIPTION,
        widget=forms.Textarea(attrs={"rows": 2}),
    )

    field_order = ["definition_file", "definition_text", "version_description", "description"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if not self.errors and "definition" not in data and not self.has_changed_description():
            self.add_error("definition_file", "Give a new definition: a file or pasted JSON.")
        return data

    def has_changed_description(self) -> bool:
        return "description" in self.changed_data
