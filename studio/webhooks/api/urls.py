from __future__ import annotations

from django.urls import path

from studio.webhooks.api import views

urlpatterns = [
    path("teams/<slug:team>/webhooks", views.WebhookListApi.as_view(), name="api-webhooks"),
    path(
        "teams/<slug:team>/webhooks/<int:webhook_id>",
        views.WebhookDetailApi.as_view(),
        name="api-webhook-detail",
    ),
    path(
        "teams/<slug:team>/webhooks/<int:webhook_id>/deliveries",
        views.WebhookDeliveriesApi.as_view(),
        name="api-webhook-deliveries",
    ),
    path(
        "teams/<slug:team>/webhooks/<int:webhook_id>/test",
        views.WebhookTestApi.as_view(),
        name="api-webhook-test",
    ),
]
