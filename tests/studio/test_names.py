"""SageMaker's name rule (`studio.names`), one statement for jobs, model groups, models,
endpoint configs, variants and endpoints: a name that fits the pattern but not the 63
characters of its column is refused with a 400 naming the field, never stored or a 500."""

from __future__ import annotations

import pytest

from endpoints.services.models import check_name
from registry.services.registration import group_create
from studio.errors import ValidationError
from studio.names import MAX_NAME, is_name
from tests.factories import make_team, make_user

TOO_LONG = "a" + "-" * 70 + "b"  # SageMaker's pattern alone lets hyphen runs through


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("churn", True),
        ("a--b", True),
        ("x" * MAX_NAME, True),
        ("x" * (MAX_NAME + 1), False),
        (TOO_LONG, False),
        ("-a", False),
        ("a-", False),
        ("a_b", False),
        ("abc\n", False),
        ("", False),
        (None, False),
    ],
)
def test_the_rule(name: object, valid: bool) -> None:
    assert is_name(name) is valid


@pytest.mark.django_db
def test_a_model_group_name_past_63_characters_is_refused() -> None:
    team = make_team()
    with pytest.raises(ValidationError) as refused:
        group_create(team=team, name=TOO_LONG, actor=make_user(team))
    assert refused.value.field == "name"


def test_an_endpoint_name_past_63_characters_is_refused() -> None:
    with pytest.raises(ValidationError) as refused:
        check_name(TOO_LONG, "variants.name")
    assert refused.value.field == "variants.name"
