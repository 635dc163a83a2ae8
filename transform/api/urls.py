from __future__ import annotations

from django.urls import path

from transform.api import views

urlpatterns = [
    path("transform-jobs", views.TransformJobCreateApi.as_view(), name="api-transform-jobs"),
]
