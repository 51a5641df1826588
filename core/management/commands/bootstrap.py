import shutil
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from core.services import admin_ensure


class Command(BaseCommand):
    help = (
        "Prepare a fresh install: data folders, the example scripts inside the default "
        "allowed root, and the superuser 'admin'. Safe to run again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        for folder in (settings.DATA_DIR, settings.RUNS_DIR, settings.UPLOADS_ROOT):
            Path(folder).mkdir(parents=True, exist_ok=True)
        examples = Path(settings.BASE_DIR) / "examples"
        target = Path(settings.DATA_DIR) / "scripts" / "examples"
        if examples.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            for src in sorted(examples.iterdir()):
                dst = target / src.name
                if src.is_file() and not dst.exists():  # never overwrite a user's edits
                    shutil.copy2(src, dst)
        password = admin_ensure()
        if password:
            self.stdout.write(
                self.style.WARNING(
                    "Created superuser 'admin' with password: "
                    f"{password}\n(saved to {Path(settings.DATA_DIR) / 'admin-password'}, mode 0600)"
                )
            )
