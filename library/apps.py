from django.apps import AppConfig


class LibraryConfig(AppConfig):
    name = "library"
    verbose_name = "Script library"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Scans report their progress on the runs feed; runs cannot import the library.
        from library.events import scan_progress_feed
        from runs.live import feed_source_register

        feed_source_register("library.scans", scan_progress_feed)
