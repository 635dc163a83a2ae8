"""The pipelines pages: the list with its new-pipeline form, a pipeline's page (its DAG
laid out from the dependencies, a Condition's branches labelled, parameters, versions, the
update form) and the diff between two versions; who may do what, and user text escaped."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from frontend.pipelines.dag import columns, dag_layout, expression_text
from frontend.pipelines.views import diff_lines
from pipelines.definition import definition_parse
from pipelines.models import Pipeline
from pipelines.services import pipeline_create, pipeline_update
from studio.accounts.models import Team
from tests.factories import make_team, make_user
from tests.pipelines.support import FIXTURES, small

pytestmark = pytest.mark.django_db

SDK_CANONICAL = FIXTURES / "sdk" / "canonical.json"


def sdk_canonical() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(SDK_CANONICAL.read_text())
    return document


@pytest.fixture
def team() -> Team:
    return make_team("lab")


@pytest.fixture
def scientist(team: Team) -> User:
    return make_user(team, role="scientist")


@pytest.fixture
def viewer(team: Team) -> User:
    return make_user(team, role="viewer")


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def field_errors(html: str, field: str) -> str:
    """The text of the `.field` block holding input `id_<field>`."""
    match = re.search(
        rf'<div class="field has-error">\s*<label for="id_{field}">.*?</div>', html, re.S
    )
    return match.group(0) if match else ""


# --- the layout (pure) ----------------------------------------------------------------------


def test_steps_are_layered_left_to_right_by_their_longest_path() -> None:
    definition = definition_parse(sdk_canonical())
    assert columns(definition.steps) == {
        "Preprocess": 0,
        "Train": 1,
        "Evaluate": 2,
        "CheckAccuracy": 3,
        "CheckRegisterEnabled": 4,
        "AccuracyTooLow": 4,
        "RegisterModel-RegisterModel": 5,
    }


def test_a_conditions_edges_into_its_branches_are_labelled_if_and_else() -> None:
    dag = dag_layout(definition_parse(sdk_canonical()))
    labels = {(e.source, e.target): e.label for e in dag.edges}
    assert labels[("CheckAccuracy", "CheckRegisterEnabled")] == "if"
    assert labels[("CheckAccuracy", "AccuracyTooLow")] == "else"
    assert labels[("CheckRegisterEnabled", "RegisterModel-RegisterModel")] == "if"
    assert labels[("Preprocess", "Train")] == ""
    # Every dependency is an edge, and no two boxes share a place.
    assert len(dag.edges) == sum(
        len(s.dependencies) for s in definition_parse(sdk_canonical()).steps
    )
    assert len({(n.x, n.y) for n in dag.nodes}) == len(dag.nodes)
    assert all(
        n.x + dag.node_width <= dag.width and n.y + dag.node_height <= dag.height for n in dag.nodes
    )


def test_a_steps_facts_say_its_image_instance_type_inputs_and_outputs() -> None:
    dag = dag_layout(definition_parse(sdk_canonical()))
    facts = {n.name: {f.label: f.value for f in n.facts} for n in dag.nodes}
    assert "sagemaker-scikit-learn" in facts["Preprocess"]["Image"]
    assert facts["Preprocess"]["Outputs"] == "train, validation, test"
    assert facts["Train"]["Instance type"] == "Parameters.train_instance_type"
    assert facts["Train"]["Depends on"] == "Preprocess"
    assert facts["Evaluate"]["Property files"] == "EvaluationReport"
    assert facts["CheckAccuracy"]["If"] == "CheckRegisterEnabled"
    assert facts["CheckAccuracy"]["Else"] == "AccuracyTooLow"
    assert "≥ Parameters.threshold" in facts["CheckAccuracy"]["Conditions"]


def test_expressions_read_as_text() -> None:
    assert expression_text({"Get": "Parameters.X"}) == "Parameters.X"
    join = {"Std:Join": {"On": "/", "Values": ["s3://b", {"Get": "Execution.PipelineExecutionId"}]}}
    assert expression_text(join) == 'join("/", s3://b, Execution.PipelineExecutionId)'
    assert expression_text(0.7) == "0.7"


def test_diff_lines_are_marked_added_removed_or_same() -> None:
    lines = diff_lines("--- a\n+++ b\n@@ -1,2 +1,2 @@\n same\n-old\n+new\n")
    assert [(line.kind, line.text) for line in lines] == [
        ("file", "--- a"),
        ("file", "+++ b"),
        ("hunk", "@@ -1,2 +1,2 @@"),
        ("same", "same"),
        ("removed", "old"),
        ("added", "new"),
    ]


# --- the list and the new-pipeline form -----------------------------------------------------


def test_the_empty_list_says_how_to_create_a_pipeline(scientist: User) -> None:
    html = signed_in(scientist).get(reverse("pipelines")).content.decode()
    assert "studiolo pipelines create NAME --definition f.json" in html
    assert "data-new-pipeline-form" in html
    assert 'class="nav-link active" href="/pipelines/"' in html


def test_the_list_shows_each_pipelines_latest_version_and_description(
    team: Team, scientist: User
) -> None:
    pipeline = pipeline_create(
        team=team, name="churn", definition=small(), actor=scientist, description="Weekly churn"
    )
    pipeline_update(pipeline=pipeline, actor=scientist, definition=small(default=0.9))
    other = make_team("other")
    pipeline_create(team=other, name="theirs", definition=small(), actor=make_user(other))
    html = signed_in(scientist).get(reverse("pipelines")).content.decode()
    row = re.search(r'<tr data-pipeline="churn">.*?</tr>', html, re.S)
    assert row is not None
    assert "v2" in row.group(0)
    assert "of 2" in row.group(0)
    assert "Weekly churn" in row.group(0)
    assert "theirs" not in html


def test_a_viewer_sees_the_list_but_no_form_and_may_not_post(team: Team, viewer: User) -> None:
    client = signed_in(viewer)
    html = client.get(reverse("pipelines")).content.decode()
    assert "data-new-pipeline-form" not in html
    response = client.post(
        reverse("pipelines"), {"name": "sneaky", "definition_text": json.dumps(small())}
    )
    assert response.status_code == 403
    assert not Pipeline.objects.filter(name="sneaky").exists()


def test_a_scientist_creates_a_pipeline_from_pasted_json(team: Team, scientist: User) -> None:
    response = signed_in(scientist).post(
        reverse("pipelines"),
        {"name": "churn", "description": "d", "definition_text": json.dumps(small())},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("pipeline-detail", args=["churn"])
    pipeline = Pipeline.objects.get(team=team, name="churn")
    assert pipeline.versions.get().definition == small()


def test_a_scientist_creates_a_pipeline_from_an_uploaded_file(team: Team, scientist: User) -> None:
    upload = SimpleUploadedFile("pipeline.json", SDK_CANONICAL.read_bytes(), "application/json")
    response = signed_in(scientist).post(
        reverse("pipelines"), {"name": "canonical", "definition_file": upload}
    )
    assert response.status_code == 302
    assert Pipeline.objects.get(team=team, name="canonical").versions.count() == 1


def test_a_bad_name_is_shown_on_the_name_field(scientist: User) -> None:
    response = signed_in(scientist).post(
        reverse("pipelines"), {"name": "-bad name-", "definition_text": json.dumps(small())}
    )
    assert response.status_code == 400
    assert "letters, digits and hyphens" in field_errors(response.content.decode(), "name")
    assert not Pipeline.objects.exists()


def test_a_taken_name_is_shown_on_the_name_field(team: Team, scientist: User) -> None:
    pipeline_create(team=team, name="churn", definition=small(), actor=scientist)
    response = signed_in(scientist).post(
        reverse("pipelines"), {"name": "churn", "definition_text": json.dumps(small())}
    )
    assert response.status_code == 400
    assert "exists already" in field_errors(response.content.decode(), "name")


def test_a_bad_definition_is_shown_on_the_field_it_came_from_naming_where(
    scientist: User,
) -> None:
    document = small()
    document["Steps"][1]["DependsOn"] = ["Nowhere"]
    client = signed_in(scientist)
    pasted = client.post(
        reverse("pipelines"), {"name": "churn", "definition_text": json.dumps(document)}
    )
    assert pasted.status_code == 400
    errors = field_errors(pasted.content.decode(), "definition_text")
    assert "Nowhere" in errors
    assert "Steps[Stop]" in errors
    uploaded = client.post(
        reverse("pipelines"),
        {"name": "churn", "definition_file": SimpleUploadedFile("p.json", b"{not json")},
    )
    assert uploaded.status_code == 400
    assert "JSON" in field_errors(uploaded.content.decode(), "definition_file")
    assert not Pipeline.objects.exists()


def test_a_definition_must_be_given_once(scientist: User) -> None:
    client = signed_in(scientist)
    none = client.post(reverse("pipelines"), {"name": "churn"})
    assert none.status_code == 400
    assert "Give the definition" in field_errors(none.content.decode(), "definition_file")
    both = client.post(
        reverse("pipelines"),
        {
            "name": "churn",
            "definition_text": json.dumps(small()),
            "definition_file": SimpleUploadedFile("p.json", json.dumps(small()).encode()),
        },
    )
    assert both.status_code == 400
    assert "not both" in field_errors(both.content.decode(), "definition_text")


# --- a pipeline's page ----------------------------------------------------------------------


@pytest.fixture
def canonical(team: Team, scientist: User) -> Pipeline:
    pipeline = pipeline_create(
        team=team, name="canonical", definition=sdk_canonical(), actor=scientist
    )
    changed = sdk_canonical()
    changed["Parameters"][4]["DefaultValue"] = 0.85  # threshold
    pipeline_update(
        pipeline=pipeline, actor=scientist, definition=changed, version_description="stricter"
    )
    return pipeline


def test_the_page_draws_every_step_and_the_branch_labels(canonical: Pipeline, viewer: User) -> None:
    html = signed_in(viewer).get(reverse("pipeline-detail", args=["canonical"])).content.decode()
    for step in definition_parse(sdk_canonical()).steps:  # the canonical pipeline's 7 steps
        assert f'data-step="{step.name}"' in html
        assert f'data-step-facts="{step.name}"' in html
    assert 'data-branch-label="if" data-branch-target="CheckRegisterEnabled"' in html
    assert 'data-branch-label="else" data-branch-target="AccuracyTooLow"' in html
    steps = definition_parse(sdk_canonical()).steps
    assert html.count("data-edge=") == sum(len(s.dependencies) for s in steps)
    assert "version 2" in html
    # the parameters of the shown version, and the versions with their diff link
    assert re.search(r'data-parameter="threshold">.*?0\.85', html, re.S)
    assert 'data-diff-link="2"' in html
    assert reverse("pipeline-diff", args=["canonical", 1, 2]) in html
    # a viewer reads; only those who may submit get the update form
    assert "data-update-form" not in html


def test_a_chosen_version_is_shown(canonical: Pipeline, viewer: User) -> None:
    client = signed_in(viewer)
    html = client.get(reverse("pipeline-detail", args=["canonical"]) + "?version=1").content
    assert b"version 1</strong>" in html
    assert re.search(rb'data-parameter="threshold">.*?0\.7', html, re.S)
    for bad in ("9", "x"):
        response = client.get(reverse("pipeline-detail", args=["canonical"]) + f"?version={bad}")
        assert response.status_code == 404


def test_another_teams_pipeline_is_not_found(canonical: Pipeline) -> None:
    outsider = make_user(make_team("other"), role="admin")
    client = signed_in(outsider)
    assert client.get(reverse("pipeline-detail", args=["canonical"])).status_code == 404
    assert client.get(reverse("pipeline-diff", args=["canonical", 1, 2])).status_code == 404


def test_user_text_in_a_definition_is_escaped(team: Team, scientist: User) -> None:
    document = small()
    document["Parameters"][0] = {
        "Name": "Note",
        "Type": "String",
        "DefaultValue": "<script>alert(1)</script>",
    }
    document["Steps"][1]["Arguments"]["ErrorMessage"] = '<img src=x onerror="alert(2)">'
    document["Steps"][0]["DisplayName"] = "<b>bold</b>"
    pipeline_create(
        team=team, name="xss", definition=document, actor=scientist, description="<i>d</i>"
    )
    html = signed_in(scientist).get(reverse("pipeline-detail", args=["xss"])).content.decode()
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)" in html
    assert "<img src=x" not in html
    assert "&lt;img src=x" in html
    assert "<b>bold</b>" not in html
    assert "<i>d</i>" not in html


def test_a_scientist_saves_a_new_version(canonical: Pipeline, scientist: User) -> None:
    changed = sdk_canonical()
    changed["Parameters"][4]["DefaultValue"] = 0.9
    client = signed_in(scientist)
    assert b"data-update-form" in client.get(reverse("pipeline-detail", args=["canonical"])).content
    response = client.post(
        reverse("pipeline-update", args=["canonical"]),
        {
            "definition_text": json.dumps(changed),
            "version_description": "even stricter",
            "description": "",
        },
        follow=True,
    )
    assert b"Saved version 3 of canonical." in response.content
    assert canonical.versions.get(number=3).description == "even stricter"


def test_the_same_definition_makes_no_version(canonical: Pipeline, scientist: User) -> None:
    latest = copy.deepcopy(canonical.versions.get(number=2).definition)
    response = signed_in(scientist).post(
        reverse("pipeline-update", args=["canonical"]),
        {"definition_file": SimpleUploadedFile("p.json", json.dumps(latest, indent=4).encode())},
        follow=True,
    )
    assert b"same as version 2: no new version" in response.content
    assert canonical.versions.count() == 2


def test_an_update_refused_shows_why_and_writes_nothing(
    canonical: Pipeline, scientist: User, viewer: User
) -> None:
    broken = sdk_canonical()
    broken["Steps"][0]["DependsOn"] = ["Evaluate"]  # a cycle
    response = signed_in(scientist).post(
        reverse("pipeline-update", args=["canonical"]), {"definition_text": json.dumps(broken)}
    )
    assert response.status_code == 400
    assert "a cycle of dependencies" in field_errors(response.content.decode(), "definition_text")
    refused = signed_in(viewer).post(
        reverse("pipeline-update", args=["canonical"]), {"definition_text": json.dumps(small())}
    )
    assert refused.status_code == 403
    assert canonical.versions.count() == 2


# --- the diff -------------------------------------------------------------------------------


def test_the_diff_marks_added_and_removed_lines_in_words_too(
    canonical: Pipeline, viewer: User
) -> None:
    html = (
        signed_in(viewer).get(reverse("pipeline-diff", args=["canonical", 1, 2])).content.decode()
    )
    removed = re.findall(r'data-kind="removed"><del>(.*?)</del>', html)
    added = re.findall(r'data-kind="added"><ins>(.*?)</ins>', html)
    assert len(removed) == 1
    assert "&quot;DefaultValue&quot;: 0.7," in removed[0]
    assert len(added) == 1
    assert "&quot;DefaultValue&quot;: 0.85," in added[0]
    assert 'class="visually-hidden">removed: </span>' in removed[0]
    assert 'class="visually-hidden">added: </span>' in added[0]
    assert "+1 added" in html
    assert "−1 removed" in html


def test_the_diff_of_a_version_with_itself_says_they_are_the_same(
    canonical: Pipeline, viewer: User
) -> None:
    html = signed_in(viewer).get(reverse("pipeline-diff", args=["canonical", 2, 2])).content
    assert b"data-diff-same" in html


def test_the_compare_form_goes_to_the_diff_and_unknown_versions_are_not_found(
    canonical: Pipeline, viewer: User
) -> None:
    client = signed_in(viewer)
    picked = client.get(reverse("pipeline-diff-pick", args=["canonical"]), {"a": "2", "b": "1"})
    assert picked["Location"] == reverse("pipeline-diff", args=["canonical", 2, 1])
    assert client.get(reverse("pipeline-diff-pick", args=["canonical"])).status_code == 404
    assert client.get(reverse("pipeline-diff", args=["canonical", 1, 7])).status_code == 404


def test_a_stored_version_that_no_longer_parses_is_said_not_drawn(
    canonical: Pipeline, viewer: User
) -> None:
    # As if a check were added after the version was stored.
    canonical.versions.filter(number=1).update(definition={"Version": "2020-12-01", "Steps": 3})
    response = signed_in(viewer).get(reverse("pipeline-detail", args=["canonical"]) + "?version=1")
    assert response.status_code == 200
    html = response.content.decode()
    assert "data-unreadable" in html
    assert "data-dag" not in html
    assert 'data-version="2"' in html


def test_the_list_reads_in_the_same_queries_for_one_pipeline_or_many(
    team: Team, scientist: User
) -> None:
    client = signed_in(scientist)
    pipeline_create(team=team, name="one", definition=small(), actor=scientist)
    client.get(reverse("pipelines"))  # the session's team is read and kept
    with CaptureQueriesContext(connection) as one:
        assert client.get(reverse("pipelines")).status_code == 200
    for name in ("two", "three", "four"):
        pipeline_create(team=team, name=name, definition=small(), actor=scientist)
    with CaptureQueriesContext(connection) as four:
        html = client.get(reverse("pipelines")).content.decode()
    assert html.count("data-pipeline=") == 4
    assert len(four) == len(one)


def test_a_viewers_refused_post_is_said_on_the_page(canonical: Pipeline, viewer: User) -> None:
    response = signed_in(viewer).post(
        reverse("pipelines"), {"name": "sneaky", "definition_text": json.dumps(small())}
    )
    assert response.status_code == 403
    assert b'class="message message-error"' in response.content
