"""ApprovalTransition takes the shape of every transition log
(`studio.transitions.TransitionLog`): `comment` becomes `message` (the API still shows it as
`comment` as well), `at` becomes `created_at`; the statuses' columns widen to the common 32."""

from __future__ import annotations

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0003_pin_registered_artifacts"),
    ]

    operations = [
        migrations.RenameField(
            model_name="approvaltransition", old_name="comment", new_name="message"
        ),
        migrations.RenameField(
            model_name="approvaltransition", old_name="at", new_name="created_at"
        ),
        migrations.AlterField(
            model_name="approvaltransition",
            name="message",
            field=models.TextField(blank=True),
        ),
        migrations.AlterField(
            model_name="approvaltransition",
            name="from_status",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AlterField(
            model_name="approvaltransition",
            name="to_status",
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AlterModelOptions(
            name="approvaltransition",
            options={"ordering": ["created_at", "id"]},
        ),
    ]
