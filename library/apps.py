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

        # A launch of a library script is checked against its argparse parameters.
        from library.arguments import launch_arguments_problems
        from runs.request import launch_check_register

        launch_check_register(name="library.arguments", check=launch_arguments_problems)
