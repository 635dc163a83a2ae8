from __future__ import annotations

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from studio import views
from studio.api.views import StudioAPIView
from studio.artifacts.api import ArtifactListApi, ArtifactObjectApi, ArtifactResolveApi


class SchemaApi(StudioAPIView, SpectacularAPIView):
    """The OpenAPI schema, for authenticated users like every other API route."""


api_v1 = [
    path("", include("studio.accounts.api.urls")),
    path("", include("studio.audit.api.urls")),
    path("", include("studio.webhooks.api.urls")),
    path("", include("jobs.api.urls")),
    path("", include("registry.api.urls")),
    path("", include("endpoints.api.urls")),
    path("", include("transform.api.urls")),
    path("", include("pipelines.api.urls")),
    path("", include("experiments.api.urls")),
    path("artifacts", ArtifactListApi.as_view(), name="api-artifacts"),
    # Before the objects' route: no key is "resolve" (every key starts with "teams/").
    path("artifacts/resolve", ArtifactResolveApi.as_view(), name="api-artifacts-resolve"),
    path("artifacts/<path:key>", ArtifactObjectApi.as_view(), name="api-artifact"),
    path("schema/", SchemaApi.as_view(), name="api-schema"),
    re_path(r"", views.api_not_found),  # last: a JSON 404 for any other path (newlines too)
]

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("api/v1/", include(api_v1)),
    path("artifacts/download", views.artifact_download, name="artifact-download"),
    # MLflow's tracking REST API: /api/2.0/mlflow/..., /mlflow/<team>/api/2.0/mlflow/...
    path("", include("experiments.mlflow.urls")),
    path("", include("frontend.urls")),
]
