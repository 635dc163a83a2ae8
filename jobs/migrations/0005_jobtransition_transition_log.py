"""JobTransition takes the shape of every transition log (`studio.transitions.TransitionLog`):
`status` becomes `to_status`, `at` becomes `created_at`, the message is no longer cut at the
column (the service still keeps 512 characters), and `from_status` is new: for the rows
already there, the primary status of the job's previous row ("" for its first)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import migrations, models

JOBS_PER_BATCH = 500
IDS_PER_UPDATE = 900  # under SQLite's older limit of 999 variables a statement


def fill_from_status(apps: Any, schema_editor: Any) -> None:
    """Job by job (a batch of jobs at a time, so memory stays bounded and nothing is read
    from the table while it is written), each row's from_status is its predecessor's
    to_status: one UPDATE per status value and slice of ids ("" is the column's value
    already)."""
    transition = apps.get_model("jobs", "JobTransition")
    job_ids = list(
        transition.objects.values_list("job_id", flat=True).distinct().order_by("job_id")
    )
    for start in range(0, len(job_ids), JOBS_PER_BATCH):
        rows = (
            transition.objects.filter(job_id__in=job_ids[start : start + JOBS_PER_BATCH])
            .order_by("job_id", "created_at", "id")
            .values_list("id", "job_id", "to_status")
        )
        previous: dict[int, str] = {}
        by_status: dict[str, list[int]] = defaultdict(list)
        for row_id, job_id, to_status in rows:
            if previous.get(job_id):
                by_status[previous[job_id]].append(row_id)
            previous[job_id] = to_status
        for status, ids in by_status.items():
            for first in range(0, len(ids), IDS_PER_UPDATE):
                transition.objects.filter(pk__in=ids[first : first + IDS_PER_UPDATE]).update(
                    from_status=status
                )


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0004_job_dispatch_and_idempotency_key"),
    ]

    operations = [
        migrations.RenameField(model_name="jobtransition", old_name="status", new_name="to_status"),
        migrations.RenameField(model_name="jobtransition", old_name="at", new_name="created_at"),
        migrations.AlterField(
            model_name="jobtransition",
            name="to_status",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AlterField(
            model_name="jobtransition",
            name="message",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="jobtransition",
            name="from_status",
            field=models.CharField(blank=True, default="", max_length=32),
            preserve_default=False,
        ),
        migrations.AlterModelOptions(
            name="jobtransition",
            options={"ordering": ["created_at", "id"]},
        ),
        migrations.RunPython(fill_from_status, migrations.RunPython.noop, elidable=True),
    ]
