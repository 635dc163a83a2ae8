"""The pipelines pages (definitions; executions' pages come with the orchestrator): the list
with the new-pipeline form, a pipeline's page (its DAG for a chosen version, parameters,
versions, the update form) and the diff between two versions.

Like every UI view: parse, call the pipelines services and selectors, render. Reading is the
team's (`team.view`, through the selectors' scope); creating and updating are the services'
to allow (`job.submit`). Service errors become field errors, never a 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from frontend.access import AuthedRequest, allows
from frontend.forms import add_service_error
from frontend.pipelines.dag import dag_layout, expression_text
from frontend.pipelines.forms import DefinitionForm, PipelineCreateForm, PipelineUpdateForm
from frontend.teams import current_team
from pipelines import selectors
from pipelines.definition import definition_parse
from pipelines.models import Pipeline
from pipelines.services import pipeline_create, pipeline_update, version_diff
from studio.accounts.roles import Action
from studio.errors import NotFound, StudioloError

# --- the list and a new pipeline ------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def pipeline_list(request: AuthedRequest) -> HttpResponse:
    team = current_team(request)
    pipelines: list[Pipeline] = []
    if team is not None:
        pipelines = list(selectors.pipelines_for_user(request.user).filter(team=team))
    can_create = allows(request, team, Action.SUBMIT_JOB)
    form = PipelineCreateForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST":
        if team is None:
            raise Http404("no team")
        if form.is_valid():
            data = form.cleaned_data
            try:
                pipeline = pipeline_create(
                    team=team,
                    name=data["name"],
                    definition=data["definition"],
                    description=data["description"],
                    actor=request.user,
                )
            except StudioloError as error:
                _show_error(form, error)
                if not can_create:  # no form on the page to show it on
                    messages.error(request, error.message)
                status = error.status
            else:
                messages.success(request, f"Created pipeline {pipeline.name} (version 1).")
                return redirect("pipeline-detail", name=pipeline.name)
        else:
            status = 400
    return render(
        request,
        "frontend/pipelines/list.html",
        {"pipelines": pipelines, "form": form, "can_create": can_create},
        status=status,
    )


def _show_error(form: DefinitionForm, error: StudioloError) -> None:
    """A service error on the field it names; one about the definition (`definition.Steps[X]
    ...`, whose message says where) on the field the definition came from."""
    if error.field and (error.field == "definition" or error.field.startswith("definition.")):
        form.add_error(form.definition_field(), error.message)
    else:
        add_service_error(form, error)


# --- one pipeline -------------------------------------------------------------------------


def _pipeline_or_404(request: AuthedRequest, name: str) -> Pipeline:
    team = current_team(request)
    if team is None:
        raise Http404("no team")
    try:
        return selectors.pipeline_for_user(request.user, team=team, name=name)
    except NotFound as exc:  # another team's pipeline is no different from none
        raise Http404(exc.message) from exc


def _version_number(raw: str | None) -> int | None:
    if not raw:
        return None
    if not raw.isdigit():
        raise Http404("no such version")
    return int(raw)


@dataclass(frozen=True)
class ParameterRow:
    name: str
    type: str
    default: str  # "" when a value must be given at start
    required: bool
    choices: str


@require_GET
def pipeline_detail(request: AuthedRequest, name: str) -> HttpResponse:
    pipeline = _pipeline_or_404(request, name)
    form = PipelineUpdateForm(initial={"description": pipeline.description})
    return _detail(request, pipeline, form, version=_version_number(request.GET.get("version")))


@require_POST
def pipeline_update_view(request: AuthedRequest, name: str) -> HttpResponse:
    pipeline = _pipeline_or_404(request, name)
    form = PipelineUpdateForm(
        request.POST, request.FILES or None, initial={"description": pipeline.description}
    )
    if not form.is_valid():
        return _detail(request, pipeline, form, version=None, status=400)
    data = form.cleaned_data
    try:
        version, created = pipeline_update(
            pipeline=pipeline,
            actor=request.user,
            definition=data.get("definition"),
            description=data["description"] if form.has_changed_description() else None,
            version_description=data["version_description"],
        )
    except StudioloError as error:
        _show_error(form, error)
        if not allows(request, pipeline.team, Action.SUBMIT_JOB):  # no form to show it on
            messages.error(request, error.message)
        return _detail(request, pipeline, form, version=None, status=error.status)
    if created:
        messages.success(request, f"Saved version {version.number} of {pipeline.name}.")
    elif data.get("definition") is not None:
        messages.info(
            request, f"The definition is the same as version {version.number}: no new version."
        )
    else:
        messages.success(request, "Saved the description.")
    return redirect("pipeline-detail", name=pipeline.name)


def _detail(
    request: AuthedRequest,
    pipeline: Pipeline,
    form: PipelineUpdateForm,
    *,
    version: int | None,
    status: int = 200,
) -> HttpResponse:
    try:
        shown = selectors.pipeline_version(pipeline, version)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    versions = list(selectors.pipeline_versions(pipeline))
    try:
        definition = definition_parse(shown.definition)
    except StudioloError as error:
        # A version stored before a check was added may fail it now: the page still shows
        # its versions and the update form, and says why there is no graph.
        definition, unreadable = None, error.message
    else:
        unreadable = ""
    parameters = [
        ParameterRow(
            name=p.name,
            type=p.type,
            default="" if p.default is None else expression_text(p.default),
            required=p.default is None,
            choices=", ".join(expression_text(v) for v in p.enum_values),
        )
        for p in (definition.parameters if definition else ())
    ]
    context: dict[str, Any] = {
        "pipeline": pipeline,
        "version": shown,
        "latest": versions[0],
        "versions": versions,
        "dag": dag_layout(definition) if definition else None,
        "unreadable": unreadable,
        "parameters": parameters,
        "form": form,
        "can_update": allows(request, pipeline.team, Action.SUBMIT_JOB),
    }
    return render(request, "frontend/pipelines/detail.html", context, status=status)


# --- the diff between two versions --------------------------------------------------------


@dataclass(frozen=True)
class DiffLine:
    kind: str  # added, removed, hunk, file, same
    sign: str  # what a screen reader says before the line
    text: str


def diff_lines(diff: str) -> list[DiffLine]:
    lines = []
    for line in diff.splitlines():
        if line.startswith(("+++", "---")):
            lines.append(DiffLine("file", "", line))
        elif line.startswith("@@"):
            lines.append(DiffLine("hunk", "", line))
        elif line.startswith("+"):
            lines.append(DiffLine("added", "added", line[1:]))
        elif line.startswith("-"):
            lines.append(DiffLine("removed", "removed", line[1:]))
        else:
            lines.append(DiffLine("same", "", line[1:]))
    return lines


@require_GET
def pipeline_diff_pick(request: AuthedRequest, name: str) -> HttpResponse:
    """The compare form's GET: on to the diff's own address."""
    pipeline = _pipeline_or_404(request, name)
    a = _version_number(request.GET.get("a"))
    b = _version_number(request.GET.get("b"))
    if a is None or b is None:
        raise Http404("pick two versions")
    return redirect("pipeline-diff", name=pipeline.name, a=a, b=b)


@require_GET
def pipeline_diff(request: AuthedRequest, name: str, a: int, b: int) -> HttpResponse:
    pipeline = _pipeline_or_404(request, name)
    try:
        diff = version_diff(pipeline=pipeline, a=a, b=b)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    lines = diff_lines(diff)
    return render(
        request,
        "frontend/pipelines/diff.html",
        {
            "pipeline": pipeline,
            "a": a,
            "b": b,
            "lines": lines,
            "added": sum(1 for line in lines if line.kind == "added"),
            "removed": sum(1 for line in lines if line.kind == "removed"),
            "versions": list(
                selectors.pipeline_versions(pipeline).values_list("number", flat=True)
            ),
        },
    )
