from __future__ import annotations

from django.urls import path

from endpoints.api import views

urlpatterns = [
    path("models", views.ModelListApi.as_view(), name="api-models"),
    path("models/<str:name>", views.ModelDetailApi.as_view(), name="api-model"),
    path("endpoint-configs", views.ConfigListApi.as_view(), name="api-endpoint-configs"),
    path(
        "endpoint-configs/<str:name>", views.ConfigDetailApi.as_view(), name="api-endpoint-config"
    ),
    path("endpoints", views.EndpointListApi.as_view(), name="api-endpoints"),
    path("endpoints/<str:name>", views.EndpointDetailApi.as_view(), name="api-endpoint"),
    path(
        "endpoints/<str:name>/traffic",
        views.EndpointTrafficApi.as_view(),
        name="api-endpoint-traffic",
    ),
]
