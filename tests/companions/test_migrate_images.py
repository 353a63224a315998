import base64

import pytest
from django.core.management import call_command

from companions.models import Companion
from media.models import StoredImage
from tests.companions.factories import make_companion, png_bytes


@pytest.fixture
def legacy_companions(user):
    good = base64.b64encode(png_bytes(1000, 1000)).decode()
    return {
        "plain": make_companion(user, name="A", header_image_legacy=good),
        "data_url": make_companion(user, name="B", header_image_legacy="data:image/png;base64," + good),
        "bad_base64": make_companion(user, name="C", header_image_legacy="@@@@ not base64 @@@@"),
        "not_image": make_companion(user, name="D", header_image_legacy=base64.b64encode(b"hello").decode()),
        "none": make_companion(user, name="E"),
    }


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("migrate_images", *args, stdout=out)
    return out.getvalue()


def test_it_moves_good_values_and_reports_corrupt_ones(legacy_companions, media_root):
    output = run()
    assert "Migrated 2 picture(s)" in output
    assert "% saved" in output
    assert output.count("Skipped companion") == 2
    for key in ("plain", "data_url"):
        companion = Companion.objects.get(pk=legacy_companions[key].pk)
        assert companion.header_image_legacy == ""
        assert (media_root / companion.header_image.file.name).exists()
        assert companion.header_image.width == 800
    for key in ("bad_base64", "not_image"):
        companion = Companion.objects.get(pk=legacy_companions[key].pk)
        assert companion.header_image_legacy  # kept for a human to look at
        assert companion.header_image is None


def test_a_second_run_changes_nothing(legacy_companions):
    run()
    files_before = set(StoredImage.objects.values_list("file", flat=True))
    output = run()
    assert "Migrated 0 picture(s)" in output
    assert set(StoredImage.objects.values_list("file", flat=True)) == files_before


def test_dry_run_writes_nothing(legacy_companions, media_root):
    output = run("--dry-run")
    assert "Would migrate 2 picture(s)" in output
    assert not StoredImage.objects.exists()
    assert Companion.objects.exclude(header_image_legacy="").count() == 4
    assert not any(p.is_file() for p in media_root.rglob("*"))
