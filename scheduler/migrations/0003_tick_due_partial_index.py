"""The tick's "is anything due?" index: the enabled tasks by ``next_run_at`` (partial).

Replaces the (enabled, next_run_at) index, which SQLite cannot use for Django's
``WHERE "enabled" AND "next_run_at" <= …`` (a bare boolean column is no equality on the
first key); PostgreSQL uses either.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler", "0002_fallback_tick_schedule"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="scheduledtask",
            name="scheduled_task_due",
        ),
        migrations.AddIndex(
            model_name="scheduledtask",
            index=models.Index(
                condition=models.Q(("enabled", True)),
                fields=["next_run_at"],
                name="scheduled_task_enabled_due",
            ),
        ),
    ]
