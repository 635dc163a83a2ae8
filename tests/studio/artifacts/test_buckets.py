"""A team's area of the store addressed as an S3 bucket: the names, and `key_for_uri` on
both backends (the store's own URIs and the team's bucket; anything else does not exist)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from studio.accounts.buckets import is_bucket_name, team_bucket, team_for_bucket
from studio.accounts.models import Team
from studio.artifacts import S3ArtifactStore
from studio.artifacts.buckets import bucket_uri, key_for_uri
from studio.errors import ValidationError
from tests.factories import make_team

if TYPE_CHECKING:
    from studio.artifacts import ArtifactStore


@pytest.mark.parametrize(
    "slug",
    ["a", "lab", "0", "a-b", "x" * 54, "x" * 55, "y" * 64, "a" + "-" * 62 + "b", "1-2-3-4"],
)
def test_every_slug_gets_a_valid_bucket_name(slug: str) -> None:
    name = team_bucket(slug)
    assert is_bucket_name(name), name
    assert 3 <= len(name) <= 63


def test_short_slugs_read_as_themselves_and_long_ones_are_hashed_apart() -> None:
    assert team_bucket("lab") == "studiolo-lab"
    assert team_bucket("x" * 54) == "studiolo-" + "x" * 54
    long_a, long_b = "x" * 60 + "a", "x" * 60 + "b"
    assert team_bucket(long_a) != team_bucket(long_b)
    assert "." in team_bucket(long_a)  # a shape no short slug can take


@pytest.mark.parametrize(
    "name",
    ["ab", "x" * 64, "Lab", "-lab", "lab-", "a..b", "192.168.1.1", "a_b", "a b", "lab/x", ""],
)
def test_bad_bucket_names_are_refused(name: str) -> None:
    assert not is_bucket_name(name)


@pytest.mark.django_db
def test_a_bucket_name_leads_back_to_its_team() -> None:
    short = make_team("lab")
    long_one = make_team("z" * 60 + "-one")
    long_two = make_team("z" * 60 + "-two")
    assert team_for_bucket("studiolo-lab") == short
    assert team_for_bucket(team_bucket(long_one)) == long_one
    assert team_for_bucket(team_bucket(long_two)) == long_two
    for unknown in ("studiolo-nobody", "lab", "other-lab", "studiolo-LAB", "studiolo-zz.abc"):
        assert team_for_bucket(unknown) is None


@pytest.fixture
def lab(db: None) -> Team:
    make_team("other")
    return make_team("lab")


def test_both_uri_forms_name_the_same_key(store: ArtifactStore, lab: Team) -> None:
    team = lab
    native = store.uri("teams/lab/data/train.csv")
    assert key_for_uri(store, native, team, field="f") == "teams/lab/data/train.csv"
    for uri in ("s3://studiolo-lab/data/train.csv", "s3://studiolo-lab/data/train.csv/"):
        assert key_for_uri(store, uri, team, field="f") == "teams/lab/data/train.csv"
    assert key_for_uri(store, "s3://studiolo-lab/", team, field="f") == "teams/lab"
    assert bucket_uri("lab", "teams/lab/data/train.csv") == "s3://studiolo-lab/data/train.csv"
    assert bucket_uri("lab", "teams/lab") == "s3://studiolo-lab/"


@pytest.mark.parametrize(
    "uri",
    [
        "s3://studiolo-other/data/train.csv",  # another team's bucket
        "s3://studiolo-nobody/data/train.csv",  # a bucket nobody has
        "s3://elsewhere/teams/lab/data/train.csv",  # not the store, not a team's bucket
        "file:///etc/passwd",
    ],
)
def test_other_places_do_not_exist(store: ArtifactStore, lab: Team, uri: str) -> None:
    with pytest.raises(ValidationError, match="does not exist") as caught:
        key_for_uri(store, uri, lab, field="input_channels.train")
    assert caught.value.field == "input_channels.train"


def test_the_store_uri_of_another_team_does_not_exist(store: ArtifactStore, lab: Team) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        key_for_uri(store, store.uri("teams/other/x.csv"), lab, field="f")


@pytest.mark.parametrize(
    ("uri", "text"),
    [
        ("s3://studiolo-lab/a//b", "empty path segment"),
        ("s3://studiolo-lab/a/../../other/x", "'..' segment"),
        ("./data", "expected s3://studiolo-lab/<key>"),
        ("", "required"),
    ],
)
def test_malformed_uris_say_why(store: ArtifactStore, lab: Team, uri: str, text: str) -> None:
    with pytest.raises(ValidationError, match=text.replace(".", r"\.")) as caught:
        key_for_uri(store, uri, lab, field="output_path")
    assert caught.value.field == "output_path"


def test_an_s3_store_whose_bucket_is_a_team_bucket_keeps_its_own_uris(
    s3_store: S3ArtifactStore, lab: Team
) -> None:
    # The store's bucket happens to be named like team lab's: its own URIs still win, and
    # keys outside them are read in the team's bucket.
    store = S3ArtifactStore(
        "studiolo-lab", "", endpoint_url=s3_store.endpoint_url, region=s3_store.region
    )
    native = "s3://studiolo-lab/teams/lab/data/x.csv"
    assert key_for_uri(store, native, lab, field="f") == "teams/lab/data/x.csv"
    assert key_for_uri(store, "s3://studiolo-lab/data/x.csv", lab, field="f") == (
        "teams/lab/data/x.csv"
    )
