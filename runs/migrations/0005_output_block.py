from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0004_run_system_env"),
    ]

    operations = [
        migrations.CreateModel(
            name="OutputBlock",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("run_id", models.CharField(max_length=64)),
                ("name", models.CharField(max_length=32)),
                ("pos", models.BigIntegerField()),
                ("data", models.BinaryField()),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("run_id", "name", "pos"), name="runs_outputblock_file_pos"
                    )
                ],
            },
        ),
    ]
