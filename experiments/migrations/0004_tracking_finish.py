# Step 3 of 3: the filled columns become required and replace the datetime columns.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0003_tracking_data"),
    ]

    operations = [
        migrations.RemoveIndex(model_name="run", name="run_experiment_time"),
        migrations.RemoveField(model_name="run", name="started_at"),
        migrations.RemoveField(model_name="run", name="ended_at"),
        migrations.AlterField(
            model_name="run",
            name="run_uuid",
            field=models.CharField(max_length=32, unique=True),
        ),
        migrations.AlterField(
            model_name="run",
            name="start_time",
            field=models.BigIntegerField(),
        ),
        migrations.AlterModelOptions(
            name="run",
            options={"ordering": ["-start_time", "-id"]},
        ),
        migrations.AddIndex(
            model_name="run",
            index=models.Index(fields=["experiment", "-start_time"], name="run_experiment_start"),
        ),
        migrations.RemoveField(model_name="metricpoint", name="timestamp"),
        migrations.RenameField(
            model_name="metricpoint", old_name="timestamp_ms", new_name="timestamp"
        ),
        migrations.AlterField(
            model_name="metricpoint",
            name="timestamp",
            field=models.BigIntegerField(),
        ),
        migrations.RemoveField(model_name="metricsummary", name="last_timestamp"),
        migrations.RenameField(
            model_name="metricsummary", old_name="last_timestamp_ms", new_name="last_timestamp"
        ),
        migrations.AlterField(
            model_name="metricsummary",
            name="last_timestamp",
            field=models.BigIntegerField(),
        ),
        migrations.AddIndex(
            model_name="metricsummary",
            index=models.Index(fields=["key", "last_value"], name="metric_summary_key_value"),
        ),
    ]
