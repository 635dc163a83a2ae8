"""The "New processing job" page: a form parsed into a `ProcessingRequest`. Every rule about
what makes a valid processing job is the service's (jobs.services.processing); its errors go
back on the fields. A script uploaded here is stored below the team's uploads and removed
again when the job is refused."""

from __future__ import annotations

import secrets
import shlex
from typing import Any, cast

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from compute.instance_types import instance_types
from frontend.access import AuthedRequest, allows
from frontend.jobs.forms import _Lines, parse_pairs
from frontend.jobs.views import _current_team_or_none, _discard
from jobs.names import is_job_name
from jobs.processing_specs import split_input, split_output
from jobs.services.processing import (
    FRAMEWORK_COMMANDS,
    InputRequest,
    OutputRequest,
    ProcessingRequest,
    processing_job_create,
)
from jobs.services.submission import DEFAULT_MAX_RUNTIME
from studio.accounts.models import Team
from studio.accounts.roles import Action
from studio.artifacts.keys import team_prefix
from studio.artifacts.services import artifact_put
from studio.errors import StudioloError


class ProcessingCreateForm(forms.Form):
    name = forms.CharField(
        max_length=63,
        help_text="Letters, digits and hyphens; unique in the team.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. split-dataset", "autocomplete": "off"}),
    )
    framework = forms.CharField(required=False, label="Framework", widget=forms.Select())
    image = forms.CharField(
        required=False,
        max_length=512,
        label="Custom image",
        help_text="Only with “Custom image”: runs its own ENTRYPOINT unless one is given.",
        widget=forms.TextInput(attrs={"placeholder": "registry/image:tag"}),
    )
    code_file = forms.FileField(
        required=False,
        label="Script",
        help_text="A .py script, run from /opt/ml/processing/input/code/.",
        widget=forms.ClearableFileInput(attrs={"accept": ".py"}),
    )
    code_uri = forms.CharField(
        required=False,
        max_length=1024,
        label="…or existing script",
        help_text="The URI of a script in the team's artifacts.",
        widget=forms.TextInput(attrs={"placeholder": "s3://… or file://…/teams/<team>/code/x.py"}),
    )
    entrypoint = forms.CharField(
        required=False,
        max_length=1024,
        label="Entrypoint",
        help_text="Split like a shell would, e.g. python3 -u. With a custom image and a "
        "script, the command that runs the script.",
    )
    arguments = _Lines(
        label="Arguments",
        help_text="One argument per line, e.g. --split=0.2.",
        placeholder="--split=0.2",
    )
    inputs = _Lines(
        label="Inputs",
        help_text="One name=URI[:LOCAL_PATH][:sharded] per line; LOCAL_PATH defaults to "
        "/opt/ml/processing/input/<name>.",
        placeholder="raw=s3://bucket/teams/<team>/raw:/opt/ml/processing/input",
    )
    outputs = _Lines(
        label="Outputs",
        help_text="One name=LOCAL_PATH[:URI][:continuous] per line; the URI defaults to the "
        "team's processing/<job>/output/<name>.",
        placeholder="train=/opt/ml/processing/train",
    )
    environment = _Lines(
        label="Environment", help_text="One KEY=value per line.", placeholder="SPLIT=0.2"
    )
    instance_type = forms.CharField(label="Instance type", widget=forms.Select())
    instance_count = forms.IntegerField(label="Instances", initial=1, min_value=1)
    max_runtime_seconds = forms.IntegerField(
        label="Max runtime (seconds)", initial=DEFAULT_MAX_RUNTIME
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        framework = cast(forms.Select, self.fields["framework"].widget)
        framework.choices = [
            *(
                (name, f"{name} · {' '.join(command)}")
                for name, command in FRAMEWORK_COMMANDS.items()
            ),
            ("", "Custom image…"),
        ]
        instance = cast(forms.Select, self.fields["instance_type"].widget)
        types = instance_types()
        instance.choices = [(name, name) for name in types]
        if not self.is_bound:
            self.initial.setdefault("framework", "sklearn")
            self.initial.setdefault("instance_type", next(iter(types), ""))

    def clean_inputs(self) -> list[InputRequest]:
        result = []
        for name, value in parse_pairs(self.cleaned_data["inputs"], "name=URI"):
            try:
                uri, local_path, distribution = split_input(value)
            except ValueError as exc:
                raise forms.ValidationError(f"{name}: {exc}") from exc
            result.append(InputRequest(name, uri, local_path, distribution))
        return result

    def clean_outputs(self) -> list[OutputRequest]:
        result = []
        for name, value in parse_pairs(self.cleaned_data["outputs"], "name=LOCAL_PATH"):
            try:
                local_path, uri, mode = split_output(value)
            except ValueError as exc:
                raise forms.ValidationError(f"{name}: {exc}") from exc
            result.append(OutputRequest(name, local_path, uri, mode))
        return result

    def clean_entrypoint(self) -> list[str] | None:
        try:
            return shlex.split(self.cleaned_data["entrypoint"]) or None
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_code_file(self) -> Any:
        upload = self.cleaned_data.get("code_file")
        if upload is not None and not (upload.name or "").endswith(".py"):
            raise forms.ValidationError("Upload a .py script.")
        return upload

    def request(self, *, code: str) -> ProcessingRequest:
        data = self.cleaned_data
        framework = (data.get("framework") or "").strip()
        arguments = [line.strip() for line in data["arguments"].splitlines() if line.strip()]
        return ProcessingRequest(
            name=data["name"].strip(),
            instance_type=data["instance_type"],
            instance_count=data["instance_count"],
            framework=framework,
            image="" if framework else (data.get("image") or "").strip(),
            code=code,
            container_entrypoint=data["entrypoint"],
            container_arguments=arguments or None,
            environment=dict(parse_pairs(data["environment"], "KEY=value")),
            inputs=data["inputs"],
            outputs=data["outputs"],
            max_runtime_seconds=data["max_runtime_seconds"],
        )

    def add_service_error(self, error: StudioloError) -> None:
        """`inputs.raw.uri: ...` goes on Inputs, `code` on the script, and so on."""
        head = (error.field or "").split(".", 1)[0]
        field = {"container_entrypoint": "entrypoint", "container_arguments": "arguments"}.get(
            head, head
        )
        if field == "code":
            field = "code_uri" if self.cleaned_data.get("code_uri") else "code_file"
        self.add_error(field if field in self.fields else None, error.message)


@require_http_methods(["GET", "POST"])
def processing_new(request: AuthedRequest) -> HttpResponse:
    team = _current_team_or_none(request)
    status = 200
    if request.method == "POST" and team is not None:
        form = ProcessingCreateForm(request.POST, request.FILES)
        if form.is_valid():
            try:
                job_id = _submit(request, team, form)
            except StudioloError as error:
                form.add_service_error(error)
                status = error.status
            else:
                messages.success(
                    request, f"Processing job “{form.cleaned_data['name']}” submitted."
                )
                return redirect("job-detail", job_id=job_id)
        else:
            status = 400
    else:
        form = ProcessingCreateForm()
    return render(
        request,
        "frontend/jobs/new_processing.html",
        {"form": form, "can_submit": allows(request, team, Action.SUBMIT_JOB)},
        status=status,
    )


def _submit(request: AuthedRequest, team: Team, form: ProcessingCreateForm) -> int:
    """Upload the script (if any) to a folder of its own, then create the job; a refused
    job takes its upload with it."""
    upload = form.cleaned_data.get("code_file")
    code = (form.cleaned_data.get("code_uri") or "").strip()
    name = form.cleaned_data["name"].strip()
    staged: str | None = None
    if upload is not None and is_job_name(name):
        stamp = f"{timezone.now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        staged = f"{team_prefix(team)}uploads/{name}/{stamp}"
        code, _ = artifact_put(user=request.user, key=f"{staged}/{upload.name}", data=upload)
    try:
        job = processing_job_create(team=team, actor=request.user, request=form.request(code=code))
    except StudioloError:
        if staged is not None:
            _discard(staged)
        raise
    return job.pk
