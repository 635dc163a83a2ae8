# The tracking model of the experiments issue, step 1 of 3: new tables, and new columns added
# nullable so that existing rows can be filled in by 0003 before 0004 makes them required.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="experiment",
            name="name",
            field=models.CharField(max_length=500),
        ),
        migrations.AddField(
            model_name="experiment",
            name="lifecycle",
            field=models.CharField(
                choices=[("active", "Active"), ("deleted", "Deleted")],
                default="active",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="experiment",
            name="deleted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="experiment",
            name="updated_at",
            field=models.DateTimeField(auto_now=True, default=django.utils.timezone.now),
            preserve_default=False,
        ),
        migrations.CreateModel(
            name="ExperimentTag",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=250)),
                ("value", models.TextField()),
                (
                    "experiment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tags",
                        to="experiments.experiment",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("experiment", "key"), name="experiment_tag_unique_key"
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="run",
            name="run_uuid",
            field=models.CharField(max_length=32, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="start_time",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="end_time",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="source",
            field=models.CharField(
                choices=[("job", "Job"), ("external", "External")],
                default="external",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="run",
            name="lifecycle",
            field=models.CharField(
                choices=[("active", "Active"), ("deleted", "Deleted")],
                default="active",
                max_length=16,
            ),
        ),
        migrations.AddField(
            model_name="run",
            name="deleted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="artifact_uri",
            field=models.CharField(blank=True, default="", max_length=1024),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="run",
            name="name",
            field=models.CharField(max_length=250),
        ),
        migrations.CreateModel(
            name="RunParam",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=250)),
                ("value", models.TextField()),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="params",
                        to="experiments.run",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("run", "key"), name="run_param_unique_key")
                ],
            },
        ),
        migrations.CreateModel(
            name="RunTag",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("key", models.CharField(max_length=250)),
                ("value", models.TextField()),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="tags",
                        to="experiments.run",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("run", "key"), name="run_tag_unique_key")
                ],
            },
        ),
        migrations.AddField(
            model_name="metricpoint",
            name="timestamp_ms",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AlterField(
            model_name="metricpoint",
            name="value",
            field=models.FloatField(null=True),
        ),
        migrations.AddField(
            model_name="metricsummary",
            name="last_timestamp_ms",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AlterField(
            model_name="metricsummary",
            name="last_value",
            field=models.FloatField(null=True),
        ),
        migrations.AlterField(
            model_name="metricsummary",
            name="min_value",
            field=models.FloatField(null=True),
        ),
        migrations.AlterField(
            model_name="metricsummary",
            name="max_value",
            field=models.FloatField(null=True),
        ),
    ]
