"""factory_boy factories of the library's rows (files on disk are the tests' business)."""

from __future__ import annotations

import hashlib

import factory
from django.utils import timezone

from library.models import FolderRoot, Scan, ScanState, Script, ScriptChange, Tag


class FolderRootFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = FolderRoot

    name = factory.Sequence(lambda n: f"root{n}")
    path = factory.Sequence(lambda n: f"/nonexistent/root{n}")


class ScanFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Scan

    root = factory.SubFactory(FolderRootFactory)
    state = ScanState.COMPLETED
    phase = "done"
    started_at = factory.LazyFunction(timezone.now)
    finished_at = factory.LazyFunction(timezone.now)


class ScriptFactory(factory.django.DjangoModelFactory):
    """A script row; by default its file does not exist (``path`` under the root's path)."""

    class Meta:
        model = Script

    root = factory.SubFactory(FolderRootFactory)
    name = factory.Sequence(lambda n: f"job{n}.py")
    relpath = factory.LazyAttribute(lambda s: s.name)
    path = factory.LazyAttribute(lambda s: f"{s.root.path}/{s.relpath}")
    extension = factory.LazyAttribute(lambda s: "." + s.name.rsplit(".", 1)[-1] if "." in s.name else "")
    language = "python"
    size = 100
    line_count = 10
    sha256 = factory.LazyAttribute(lambda s: hashlib.sha256(s.path.encode()).hexdigest())
    mtime = 1_700_000_000.0


class TagFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tag

    name = factory.Sequence(lambda n: f"tag{n}")
    color = "#3b82f6"


class ScriptChangeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ScriptChange

    script = factory.SubFactory(ScriptFactory)
    action = "update"
    changes = factory.LazyFunction(lambda: {"owner": ["", "ops"]})
