from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every app shares: users and roles, API keys, authentication, permissions,
    errors, settings helpers, throttling and middleware. Imports no other ScriptOps app."""

    name = "core"
    verbose_name = "ScriptOps accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # DRF's stubs declare its serializers, fields and viewsets generic
        # (``ModelSerializer[Run]``); make them subscriptable at run time too. Here, not in
        # settings: importing DRF needs configured settings. Before any API module is
        # imported: URL confs load lazily, after every app is ready.
        import django_stubs_ext
        from rest_framework import fields, generics, serializers, viewsets

        django_stubs_ext.monkeypatch(
            extra_classes=[
                fields.Field,
                serializers.BaseSerializer,
                serializers.Serializer,
                serializers.ListSerializer,
                serializers.ModelSerializer,
                generics.GenericAPIView,
                viewsets.GenericViewSet,
                viewsets.ModelViewSet,
                viewsets.ReadOnlyModelViewSet,
            ]
        )
