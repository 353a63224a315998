from django.urls import path

from memories import views

app_name = "memories"

# Mounted under /companions/<companion_id>/memories/ (companionhub/urls.py).
urlpatterns = [
    path("", views.memory_list, name="list"),
    path("add/", views.memory_add, name="add"),
    path("clear/", views.memories_clear, name="clear"),
    path("<int:memory_id>/edit/", views.memory_edit, name="edit"),
    path("<int:memory_id>/pin/", views.memory_pin, name="pin"),
    path("<int:memory_id>/delete/", views.memory_delete, name="delete"),
]
