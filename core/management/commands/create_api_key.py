from typing import Any

from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.roles import Role
from core.services import api_key_create, user_ensure


class Command(BaseCommand):
    help = (
        "Create an API key for USERNAME (the user is created with --role and no usable "
        "password if missing). The key is printed as the last line."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", choices=Role.values, default=Role.READONLY)
        parser.add_argument("--name", default="cli")
        parser.add_argument("--expires-days", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["expires_days"] is not None and options["expires_days"] < 1:
            raise CommandError("--expires-days must be at least 1")
        try:
            UnicodeUsernameValidator()(options["username"])
        except ValidationError as exc:
            raise CommandError(f"Invalid username {options['username']!r}: {' '.join(exc.messages)}") from exc
        user, created = user_ensure(username=options["username"], role=options["role"])
        if created:
            self.stderr.write(f"Created user {user.username} with role {user.role}.")
        issued = api_key_create(
            user=user, name=options["name"], role=options["role"], expires_days=options["expires_days"]
        )
        if issued.key.role != options["role"]:
            self.stderr.write(
                f"Note: {user.username}'s role is {user.effective_role}; the key's role is capped "
                f"at {issued.key.role}."
            )
        self.stdout.write(issued.raw)
