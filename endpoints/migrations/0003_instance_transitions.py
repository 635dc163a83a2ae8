"""Instance statuses get a transition log (InstanceTransition), and the Removed status its
last row names."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("endpoints", "0002_endpointevent_transition_log"),
    ]

    operations = [
        migrations.AlterField(
            model_name="endpointinstance",
            name="status",
            field=models.CharField(
                choices=[
                    ("Starting", "Starting"),
                    ("Healthy", "Healthy"),
                    ("Unhealthy", "Unhealthy"),
                    ("Draining", "Draining"),
                    ("Removed", "Removed"),
                ],
                default="Starting",
                max_length=16,
            ),
        ),
        migrations.CreateModel(
            name="InstanceTransition",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("from_status", models.CharField(blank=True, max_length=32)),
                ("to_status", models.CharField(blank=True, max_length=32)),
                ("message", models.TextField(blank=True)),
                ("actor_name", models.CharField(max_length=150)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("instance_id", models.BigIntegerField()),
                ("container_name", models.CharField(blank=True, max_length=128)),
                ("variant_name", models.CharField(max_length=63)),
                (
                    "endpoint",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="instance_transitions",
                        to="endpoints.endpoint",
                    ),
                ),
            ],
            options={
                "ordering": ["created_at", "id"],
                "abstract": False,
                "indexes": [
                    models.Index(
                        fields=["endpoint", "created_at"], name="insttransition_endpoint_time"
                    )
                ],
            },
        ),
    ]
