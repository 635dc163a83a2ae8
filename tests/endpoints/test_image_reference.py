"""An image reference the Docker engine cannot parse names no image: a 400 naming `image`
(the fuzzer found it answered 503, "the Docker engine refused", as if the engine were down)."""

from __future__ import annotations

import pytest
from django.test import Client

from compute.runtime.docker import DockerRuntime
from tests.factories import make_team, make_token, make_user

BAD_REFERENCES = ["Upper/Case:tag", "no spaces allowed", "À-¶RT", "a:b:c:d"]


@pytest.mark.docker
@pytest.mark.parametrize("image", BAD_REFERENCES)
def test_a_malformed_reference_is_no_image(docker_engine: None, image: str) -> None:
    assert DockerRuntime().image_exists(image) is False


@pytest.mark.docker
@pytest.mark.django_db
def test_a_model_with_a_malformed_image_is_a_400_naming_it(
    docker_engine: None, settings: object
) -> None:
    settings.RUNTIME = "docker"  # type: ignore[attr-defined]
    team = make_team("lab")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {make_token(make_user(team, role='admin'))}")
    response = client.post(
        "/api/v1/models",
        {"name": "m", "image": "Upper/Case:tag", "artifact_uri": "file:///nowhere"},
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["error"]["field"] == "image"
