"""``/groups/``: a group is a conversation with two to six companions; its id is the conversation's."""

from django.urls import path

from chat import views

app_name = "groups"

urlpatterns = [
    path("", views.group_list, name="list"),
    path("new/", views.group_create, name="create"),
    path("<int:group_id>/", views.group_page, name="page"),
    path("<int:group_id>/edit/", views.group_edit, name="edit"),
    path("<int:group_id>/delete/", views.group_delete, name="delete"),
]
