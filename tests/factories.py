"""factory_boy factories shared by the tests."""

import factory

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
