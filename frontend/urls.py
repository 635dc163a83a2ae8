from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from frontend import dashboard, login
from frontend.accounts import views as accounts_views
from frontend.audit import views as audit_views
from frontend.endpoints import views as endpoints_views
from frontend.experiments import runs as runs_views
from frontend.experiments import views as experiments_views
from frontend.jobs import processing as jobs_processing
from frontend.jobs import views as jobs_views
from frontend.pipelines import views as pipelines_views
from frontend.registry import views as registry_views

urlpatterns = [
    path("login/", login.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", dashboard.dashboard, name="dashboard"),
    path("team/switch/", accounts_views.team_switch, name="team-switch"),
    path("audit/", audit_views.audit, name="audit"),
    path("settings/tokens/", accounts_views.tokens, name="settings-tokens"),
    path(
        "settings/tokens/<int:token_id>/revoke/",
        accounts_views.token_revoke_view,
        name="settings-token-revoke",
    ),
    path("settings/team/", accounts_views.team, name="settings-team"),
    path("experiments/", experiments_views.experiment_list, name="experiments"),
    path(
        "experiments/create/",
        experiments_views.experiment_create_view,
        name="experiment-create",
    ),
    path(
        "experiments/<int:experiment_id>/",
        experiments_views.experiment_detail,
        name="experiment-detail",
    ),
    path(
        "experiments/<int:experiment_id>/rename/",
        experiments_views.experiment_rename_view,
        name="experiment-rename",
    ),
    path(
        "experiments/<int:experiment_id>/delete/",
        experiments_views.experiment_delete_view,
        name="experiment-delete",
    ),
    path(
        "experiments/<int:experiment_id>/restore/",
        experiments_views.experiment_restore_view,
        name="experiment-restore",
    ),
    # Before runs/<run_id>/: run ids are 32 hex digits, never these words.
    path("runs/compare/", runs_views.runs_compare, name="runs-compare"),
    path("runs/series/", runs_views.runs_series, name="runs-series"),
    path("runs/<str:run_id>/", runs_views.run_detail, name="run-detail"),
    path("runs/<str:run_id>/rename/", runs_views.run_rename_view, name="run-rename"),
    path("runs/<str:run_id>/delete/", runs_views.run_delete_view, name="run-delete"),
    path("runs/<str:run_id>/restore/", runs_views.run_restore_view, name="run-restore"),
    path("jobs/", jobs_views.job_list, name="jobs"),
    path("jobs/new/", jobs_views.job_new, name="job-new"),
    path("jobs/new-processing/", jobs_processing.processing_new, name="job-new-processing"),
    path("jobs/<int:job_id>/", jobs_views.job_detail, name="job-detail"),
    path("jobs/<int:job_id>/stop/", jobs_views.job_stop_view, name="job-stop"),
    path("models/", registry_views.model_list, name="models"),
    # Outside /models/<name>/: any of those names could be a group's.
    path("reviews/", registry_views.model_review, name="model-review"),
    path("jobs/<int:job_id>/register-model/", registry_views.model_register, name="model-register"),
    path("models/<str:name>/", registry_views.model_group, name="model-group"),
    path("models/<str:name>/<int:version>/", registry_views.model_package, name="model-package"),
    path(
        "models/<str:name>/<int:version>/decide/",
        registry_views.model_package_decide,
        name="model-package-decide",
    ),
    path(
        "models/<str:name>/<int:version>/deploy/",
        endpoints_views.model_package_deploy,
        name="model-package-deploy",
    ),
    path("pipelines/", pipelines_views.pipeline_list, name="pipelines"),
    path("pipelines/<str:name>/", pipelines_views.pipeline_detail, name="pipeline-detail"),
    path(
        "pipelines/<str:name>/update/",
        pipelines_views.pipeline_update_view,
        name="pipeline-update",
    ),
    path(
        "pipelines/<str:name>/diff/", pipelines_views.pipeline_diff_pick, name="pipeline-diff-pick"
    ),
    path(
        "pipelines/<str:name>/diff/<int:a>/<int:b>/",
        pipelines_views.pipeline_diff,
        name="pipeline-diff",
    ),
    path("endpoints/", endpoints_views.endpoint_list, name="endpoints"),
    # `/endpoints/<name>/invocations` (no trailing slash) is the data plane's, answered
    # before Django (endpoints.gateway); these pages all end with a slash.
    path("endpoints/<str:name>/", endpoints_views.endpoint_detail, name="endpoint-detail"),
    path(
        "endpoints/<str:name>/update/",
        endpoints_views.endpoint_update_view,
        name="endpoint-update",
    ),
    path(
        "endpoints/<str:name>/delete/",
        endpoints_views.endpoint_delete_view,
        name="endpoint-delete",
    ),
    path(
        "endpoints/<str:name>/traffic/",
        endpoints_views.endpoint_traffic_view,
        name="endpoint-traffic",
    ),
    path(
        "endpoints/<str:name>/try-token/",
        endpoints_views.endpoint_try_token,
        name="endpoint-try-token",
    ),
]
