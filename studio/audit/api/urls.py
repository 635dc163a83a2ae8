from __future__ import annotations

from django.urls import path

from studio.audit.api import views

urlpatterns = [path("audit", views.AuditListApi.as_view(), name="api-audit")]
