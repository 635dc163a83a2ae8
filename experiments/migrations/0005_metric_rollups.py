# Tracking at scale: the multi-resolution rollups of metric series (experiments.rollups),
# filled for the points already recorded; points lose their per-row foreign key check and
# their redundant run index (the write path locks the run's row once per batch instead, see
# MetricPoint.run); params get an index on (key, value prefix) for searches by value.

import django.db.models.deletion
import django.db.models.functions.text
from django.db import migrations, models


def rollups_without_rowid(apps, schema_editor):
    # SQLite only: the rollups are stored in their primary key's order (a WITHOUT ROWID
    # table), so a read of consecutive cells is one sequential scan rather than an index scan
    # plus a lookup per row (measured: a third less time per read). The table is empty here.
    # A later migration that remakes this table would make it an ordinary one again, which
    # costs speed, not correctness.
    connection = schema_editor.connection
    if connection.vendor != "sqlite":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = %s",
            ["experiments_metricrollup"],
        )
        (create,) = cursor.fetchone()
        cursor.execute('DROP TABLE "experiments_metricrollup"')
        cursor.execute(create + " WITHOUT ROWID")


def fill_rollups(apps, schema_editor):
    # The service folds exactly as the write path does. It reads the current models, which
    # match the schema at this point of the history (points are unchanged since 0004).
    from experiments.services.rollups import rollups_rebuild

    summaries = apps.get_model("experiments", "MetricSummary").objects
    for run_id, key in summaries.order_by("run_id", "key").values_list("run_id", "key"):
        rollups_rebuild(run_id=run_id, key=key)


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0004_tracking_finish"),
    ]

    operations = [
        migrations.AlterField(
            model_name="metricpoint",
            name="run",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="experiments.run",
            ),
        ),
        migrations.CreateModel(
            name="MetricRollup",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "run",
                        "key",
                        "level",
                        "bucket",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("key", models.CharField(max_length=250)),
                ("level", models.SmallIntegerField()),
                ("bucket", models.BigIntegerField()),
                ("count", models.BigIntegerField()),
                ("nan_count", models.BigIntegerField()),
                ("first_step", models.BigIntegerField()),
                ("last_step", models.BigIntegerField()),
                ("last_timestamp", models.BigIntegerField()),
                ("last_value", models.FloatField(null=True)),
                ("min_value", models.FloatField(null=True)),
                ("min_step", models.BigIntegerField(null=True)),
                ("min_timestamp", models.BigIntegerField(null=True)),
                ("max_value", models.FloatField(null=True)),
                ("max_step", models.BigIntegerField(null=True)),
                ("max_timestamp", models.BigIntegerField(null=True)),
                (
                    "run",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="experiments.run",
                    ),
                ),
            ],
        ),
        migrations.RunPython(rollups_without_rowid, migrations.RunPython.noop),
        migrations.RunPython(fill_rollups, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="runparam",
            index=models.Index(
                models.F("key"),
                django.db.models.functions.text.Left("value", 200),
                name="run_param_key_value",
            ),
        ),
    ]
