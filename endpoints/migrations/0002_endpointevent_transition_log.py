"""EndpointEvent takes the shape of every transition log (`studio.transitions.TransitionLog`):
`at` becomes `created_at`; the statuses' columns widen to the common 32."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("endpoints", "0001_initial"),
    ]

    operations = [
        migrations.RenameField(model_name="endpointevent", old_name="at", new_name="created_at"),
        migrations.AlterField(
            model_name="endpointevent",
            name="from_status",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AlterField(
            model_name="endpointevent",
            name="to_status",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AlterModelOptions(
            name="endpointevent",
            options={"ordering": ["created_at", "id"]},
        ),
    ]
