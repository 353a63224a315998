import secrets

import django.core.validators
from django.db import migrations, models

import companions.models


def give_each_companion_its_own_seed(apps, schema_editor) -> None:
    """AddField computes a callable default once, for every existing row: one seed for all
    companions would make them look alike, which is the opposite of the point."""
    Companion = apps.get_model("companions", "Companion")
    # The database being migrated, which is not always "default" (manage.py move, restore).
    companions = Companion.objects.using(schema_editor.connection.alias)
    for pk in list(companions.values_list("pk", flat=True)):
        companions.filter(pk=pk).update(image_seed=secrets.randbelow(2**32))


class Migration(migrations.Migration):
    dependencies = [
        ("companions", "0003_moderation_permissions"),
    ]

    operations = [
        migrations.AddField(
            model_name="companion",
            name="image_seed",
            field=models.PositiveBigIntegerField(
                default=companions.models.new_image_seed,
                help_text="The same seed keeps pictures alike. Change it, or re-roll, for a new look.",
                validators=[django.core.validators.MaxValueValidator(4294967295)],
            ),
        ),
        migrations.AddField(
            model_name="companion",
            name="use_header_as_reference",
            field=models.BooleanField(
                default=False,
                help_text="Paint every picture from the header picture, so the face and style stay the same.",
                verbose_name="Use header picture as reference",
            ),
        ),
        migrations.RunPython(give_each_companion_its_own_seed, migrations.RunPython.noop, elidable=True),
    ]
