"""factory_boy factories shared by the tests."""

import uuid

import factory
from django.utils import timezone

from analytics.models import path_key as analytics_path_key
from core.models import User
from core.roles import Role
from runs.models import Run


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    role = Role.USER
    password = factory.PostGenerationMethodCall("set_password", "pw-for-tests")

    @factory.post_generation
    def _save(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            self.save()


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    script_path = "/nonexistent/script.py"
    status = "completed"
    run_status = "success"
    exit_code = 0


class SeriesFactory(factory.django.DjangoModelFactory):
    """One metric of one script (``path_key`` follows ``script_path``)."""

    class Meta:
        model = "analytics.Series"
        django_get_or_create = ("path_key", "metric")

    script_path = "/srv/scripts/job.py"
    path_key = factory.LazyAttribute(lambda o: analytics_path_key(o.script_path))
    metric = "duration_seconds"


class PointFactory(factory.django.DjangoModelFactory):
    """One recorded value; ``recorded_at`` now unless given."""

    class Meta:
        model = "analytics.Point"

    series = factory.SubFactory(SeriesFactory)
    run_id = factory.LazyFunction(uuid.uuid4)
    recorded_at = factory.LazyFunction(timezone.now)
    value = 1.0
    status = "completed"
    source = "api"
