# MLflow's metric history comes in time order (timestamp, step, value): each summary says
# whether its series' step order is that order (`MetricSummary.in_step_order`), so
# `metrics/get-history` pages through the (run, key, step) index instead of a second index
# that every write would pay for. Series logged before this are marked "not known to be"
# (False, never wrong): their history pages are sorted by the database. Working it out here
# would read every point of every series.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("experiments", "0005_metric_rollups"),
    ]

    operations = [
        migrations.AddField(
            model_name="metricsummary",
            name="in_step_order",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="metricsummary",
            name="first_step",
            field=models.BigIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="metricsummary",
            name="first_timestamp",
            field=models.BigIntegerField(null=True),
        ),
    ]
