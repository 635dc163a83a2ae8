from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.dashboard, name="dashboard"),
    path("team/switch/", views.team_switch, name="team-switch"),
    path("audit/", views.audit, name="audit"),
    path("settings/tokens/", views.tokens, name="settings-tokens"),
    path(
        "settings/tokens/<int:token_id>/revoke/",
        views.token_revoke_view,
        name="settings-token-revoke",
    ),
    path("settings/team/", views.team, name="settings-team"),
]
