from django.apps import AppConfig


class SchedulerConfig(AppConfig):
    name = "scheduler"
    verbose_name = "Scheduler"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # runs stands below the scheduler and never imports it: a task naming an uploaded
        # script tells runs here that the upload is still in use (kept, not swept).
        from runs.services.uploads import upload_referrer_register
        from scheduler.selectors import task_script_paths_referenced

        upload_referrer_register(name="scheduler.tasks", referenced=task_script_paths_referenced)
