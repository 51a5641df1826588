"""The fallback tick: a django-q2 Schedule running ``scheduler.tasks.tick`` every minute.

``manage.py serve`` ticks every ``--tick-interval`` (0.5 s) itself; this Schedule keeps
deployments that run bare ``qcluster`` processes firing, at minute resolution (see
docs/scheduler.md). Created once, idempotently (looked up by name); the tick is safe to
run from any number of processes at once.
"""

from django.db import migrations

NAME = "scriptops.scheduler.tick"


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    if not Schedule.objects.filter(name=NAME).exists():
        Schedule.objects.create(
            name=NAME,
            func="scheduler.tasks.tick",
            schedule_type="I",  # Schedule.MINUTES
            minutes=1,
            repeats=-1,
        )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("scheduler", "0001_initial"),
        ("django_q", "0018_task_success_index"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
