from __future__ import annotations

from django.urls import path

from studio.accounts.api import views

urlpatterns = [
    path("me", views.MeApi.as_view(), name="api-me"),
    path("teams/<slug:team>/members", views.TeamMembersApi.as_view(), name="api-team-members"),
    path("tokens", views.TokenListApi.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>", views.TokenDetailApi.as_view(), name="api-token-detail"),
]
