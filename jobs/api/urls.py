from __future__ import annotations

from django.urls import path

from jobs.api import processing, views

urlpatterns = [
    path("jobs", views.JobListApi.as_view(), name="api-jobs"),
    path(
        "processing-jobs",
        processing.ProcessingJobCreateApi.as_view(),
        name="api-processing-jobs",
    ),
    path("jobs/<int:job_id>", views.JobDetailApi.as_view(), name="api-job"),
    path("jobs/<int:job_id>/stop", views.JobStopApi.as_view(), name="api-job-stop"),
    path("jobs/<int:job_id>/logs", views.JobLogsApi.as_view(), name="api-job-logs"),
    path(
        "jobs/<int:job_id>/logs/download",
        views.JobLogDownloadApi.as_view(),
        name="api-job-logs-download",
    ),
]
