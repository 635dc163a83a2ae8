"""Forms of the jobs pages. They parse text into a `JobRequest`; every rule about what makes
a valid job is the submission service's, and its errors are put back on the fields here."""

from __future__ import annotations

import dataclasses
import re
from typing import Any, cast

from django import forms
from django.core.files.uploadedfile import UploadedFile

from compute.frameworks import FRAMEWORK_IMAGES
from compute.instance_types import instance_types
from frontend.forms import CursorField
from frontend.jobs.display import STATUS_FILTERS
from jobs.contract import SHARDED_BY_S3_KEY
from jobs.services.submission import (
    DEFAULT_MAX_RUNTIME,
    ChannelRequest,
    JobRequest,
    MetricDefinition,
)
from studio.errors import StudioloError

SOURCE_SUFFIXES = (".py", ".tar.gz", ".tgz")

# --- the list ----------------------------------------------------------------------------


class JobFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[(f.key, f.label) for f in STATUS_FILTERS])
    q = forms.CharField(
        required=False,
        max_length=63,
        label="Name",
        widget=forms.TextInput(attrs={"placeholder": "Search by name", "type": "search"}),
    )
    cursor = CursorField()


# --- a new job -----------------------------------------------------------------------------


def parse_pairs(text: str, what: str) -> list[tuple[str, str]]:
    """`key=value` lines; blank lines and `#` comments are skipped. The value keeps any
    further `=` (a regex such as `loss=([0-9.]+)` stays whole)."""
    pairs = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, separator, value = line.partition("=")
        if not separator or not key.strip():
            raise forms.ValidationError(f"line {number}: expected {what}, got {line!r}")
        pairs.append((key.strip(), value.strip()))
    return pairs


class _Lines(forms.CharField):
    def __init__(self, *, placeholder: str, **kwargs: Any) -> None:
        super().__init__(
            required=False,
            strip=False,
            widget=forms.Textarea(
                attrs={"rows": 3, "placeholder": placeholder, "spellcheck": "false"}
            ),
            **kwargs,
        )


class JobCreateForm(forms.Form):
    """Select lists are plain text fields with a select widget: whether a framework or an
    instance type exists is the service's answer, with the service's message."""

    name = forms.CharField(
        max_length=63,
        help_text="Letters, digits and hyphens; unique in the team.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. iris-baseline", "autocomplete": "off"}),
    )
    framework = forms.CharField(required=False, label="Framework", widget=forms.Select())
    image = forms.CharField(
        required=False,
        max_length=512,
        label="Custom image",
        help_text="Only with “Custom image”: an image the container engine has.",
        widget=forms.TextInput(attrs={"placeholder": "registry/image:tag"}),
    )
    entry_point = forms.CharField(
        required=False,
        max_length=256,
        help_text="The script to run, e.g. train.py. Defaults to the uploaded .py file.",
        widget=forms.TextInput(attrs={"placeholder": "train.py"}),
    )
    source_file = forms.FileField(
        required=False,
        label="Upload source",
        help_text="A .py script or a .tar.gz of the source folder.",
        widget=forms.ClearableFileInput(attrs={"accept": ".py,.tar.gz,.tgz"}),
    )
    source_uri = forms.CharField(
        required=False,
        max_length=1024,
        label="…or existing source",
        help_text="The URI of a sourcedir.tar.gz or a folder in the team's artifacts.",
        widget=forms.TextInput(attrs={"placeholder": "s3://… or file://…/teams/<team>/code"}),
    )
    hyperparameters = _Lines(
        label="Hyperparameters",
        help_text="One key=value per line.",
        placeholder="epochs=10\nlearning_rate=0.01",
    )
    channels = _Lines(
        label="Input channels",
        help_text="One name=URI per line; mounted at /opt/ml/input/data/<name>.",
        placeholder="train=s3://bucket/teams/<team>/data/train",
    )
    instance_type = forms.CharField(label="Instance type", widget=forms.Select())
    # Its range (1..the type's max_count, one on the process runtime) is the service's rule.
    instance_count = forms.IntegerField(
        required=False,  # left empty: one instance
        label="Instance count",
        initial=1,
        help_text="Instances algo-1…algo-N on a private network; up to the type's max_count.",
        widget=forms.NumberInput(attrs={"min": 1}),
    )
    sharded_channels = forms.CharField(
        required=False,
        max_length=1024,
        label="Sharded channels",
        help_text="Channel names, comma-separated, split by ShardedByS3Key: each instance gets "
        "a disjoint share of the objects. The others are FullyReplicated.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. train", "spellcheck": "false"}),
    )
    max_runtime_seconds = forms.IntegerField(
        label="Max runtime (seconds)",
        initial=DEFAULT_MAX_RUNTIME,
        help_text="Stopped when exceeded. 86400 = 24 hours.",
    )
    metric_definitions = _Lines(
        label="Metric definitions",
        help_text="One name=regex per line; the regex captures the value.",
        placeholder="loss=loss=([0-9.]+)",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        framework = cast(forms.Select, self.fields["framework"].widget)
        framework.choices = [
            *((name, f"{name} · {image}") for name, image in sorted(FRAMEWORK_IMAGES.items())),
            ("", "Custom image…"),
        ]
        types = instance_types()
        instance = cast(forms.Select, self.fields["instance_type"].widget)
        instance.choices = [
            (
                name,
                f"{name} · {spec.cpus:g} CPU, {spec.memory_mb} MB"
                + (f", {spec.gpus} GPU" if spec.gpus else ""),
            )
            for name, spec in types.items()
        ]
        if not self.is_bound:
            # scikit-learn first: the lightest image, and what most first jobs use.
            default = "sklearn" if "sklearn" in FRAMEWORK_IMAGES else ""
            self.initial.setdefault(
                "framework", default or next(iter(sorted(FRAMEWORK_IMAGES)), "")
            )
            self.initial.setdefault("instance_type", next(iter(types), ""))

    def clean_hyperparameters(self) -> dict[str, str]:
        pairs = parse_pairs(self.cleaned_data["hyperparameters"], "key=value")
        result: dict[str, str] = {}
        for key, value in pairs:
            if key in result:
                raise forms.ValidationError(f"{key} is given twice")
            result[key] = value
        return result

    def clean_channels(self) -> list[ChannelRequest]:
        return [
            ChannelRequest(name=name, uri=uri)
            for name, uri in parse_pairs(self.cleaned_data["channels"], "name=URI")
        ]

    def clean_metric_definitions(self) -> list[MetricDefinition]:
        return [
            MetricDefinition(name=name, regex=regex)
            for name, regex in parse_pairs(self.cleaned_data["metric_definitions"], "name=regex")
        ]

    def clean_source_file(self) -> UploadedFile[Any] | None:
        upload: UploadedFile[Any] | None = self.cleaned_data.get("source_file")
        if upload is not None and not (upload.name or "").lower().endswith(SOURCE_SUFFIXES):
            raise forms.ValidationError("Upload a .py script or a .tar.gz archive.")
        return upload

    def clean_sharded_channels(self) -> list[str]:
        names = [
            name for name in re.split(r"[\s,]+", self.cleaned_data["sharded_channels"]) if name
        ]
        return list(dict.fromkeys(names))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("source_file") and (data.get("source_uri") or "").strip():
            self.add_error("source_uri", "Upload a file or give a URI, not both.")
        channels: list[ChannelRequest] | None = data.get("channels")
        sharded: list[str] | None = data.get("sharded_channels")
        if channels is not None and sharded:
            unknown = [name for name in sharded if name not in {c.name for c in channels}]
            if unknown:
                self.add_error("sharded_channels", f"not an input channel: {', '.join(unknown)}")
            else:
                data["channels"] = [
                    dataclasses.replace(channel, distribution=SHARDED_BY_S3_KEY)
                    if channel.name in sharded
                    else channel
                    for channel in channels
                ]
        return data

    def job_request(self, *, source_uri: str, entry_point: str) -> JobRequest:
        data = self.cleaned_data
        framework = (data.get("framework") or "").strip()
        return JobRequest(
            name=data["name"].strip(),
            instance_type=data["instance_type"],
            instance_count=1 if data.get("instance_count") is None else data["instance_count"],
            framework=framework,
            # The image box is ignored while a framework is chosen: the browser keeps what
            # was typed there even when the field is hidden.
            image="" if framework else (data.get("image") or "").strip(),
            entry_point=entry_point,
            source_uri=source_uri,
            hyperparameters=data["hyperparameters"],
            channels=data["channels"],
            max_runtime_seconds=data["max_runtime_seconds"],
            metric_definitions=data["metric_definitions"],
        )

    def add_service_error(self, error: StudioloError, *, uploaded: bool) -> None:
        """Put a service error on the field it names (`input_channels.train` → channels)."""
        path = error.field or ""
        head = path.split(".", 1)[0]
        field = {
            "input_channels": "channels",
            "key": "source_file",  # the upload's key was refused
            "source_uri": "source_file" if uploaded else "source_uri",
        }.get(head, head)
        message = error.message
        # The service prefixes its messages with the field's path; on the field itself
        # "name: 1-63 letters..." reads as "1-63 letters...", and "input_channels.train: ..."
        # keeps what says which line: "train: ...".
        if head and message.startswith(head + ": "):
            message = message[len(head) + 2 :]
        elif head and message.startswith(head + "."):
            message = message[len(head) + 1 :]
        self.add_error(field if field in self.fields else None, message)
