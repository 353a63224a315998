from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0007_moderators_see_connections"),
    ]

    operations = [
        migrations.AddField(
            model_name="message",
            name="reasoning",
            field=models.TextField(blank=True, default=""),
        ),
    ]
