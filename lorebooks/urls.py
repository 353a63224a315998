from django.urls import path

from lorebooks import views

app_name = "lorebooks"

urlpatterns = [
    path("", views.lorebook_list, name="list"),
    path("new/", views.lorebook_create, name="create"),
    path("import/", views.lorebook_import, name="import"),
    path("<int:lorebook_id>/", views.lorebook_detail, name="detail"),
    path("<int:lorebook_id>/delete/", views.lorebook_delete, name="delete"),
    path("<int:lorebook_id>/entries/new/", views.entry_create, name="entry_create"),
    path("<int:lorebook_id>/entries/<int:entry_id>/", views.entry_edit, name="entry_edit"),
    path("<int:lorebook_id>/entries/<int:entry_id>/delete/", views.entry_delete, name="entry_delete"),
    path(
        "<int:lorebook_id>/export/<str:fmt>.json",
        views.lorebook_export,
        name="export",
    ),
]
