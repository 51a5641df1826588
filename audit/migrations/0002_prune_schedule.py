"""The audit log's retention cleanup: a django-q2 Schedule running ``audit.tasks.prune`` daily.

Created once, idempotently (looked up by name); deleting the old events twice is harmless.
"""

from django.db import migrations

NAME = "scriptops.audit.prune"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    if not Schedule.objects.filter(name=NAME).exists():
        Schedule.objects.create(
            name=NAME,
            func="audit.tasks.prune",
            schedule_type="D",  # Schedule.DAILY
            repeats=-1,
        )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
