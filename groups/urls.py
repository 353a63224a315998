from django.urls import path

from groups import views

app_name = "groups"

urlpatterns = [
    path("", views.group_list, name="list"),
    path("new/", views.group_create, name="create"),
    path("<int:group_id>/", views.group_page, name="page"),
    path("<int:group_id>/send/", views.group_send, name="send"),
    path("<int:group_id>/messages/", views.group_older, name="older"),
    path("<int:group_id>/edit/", views.group_edit, name="edit"),
    path("<int:group_id>/delete/", views.group_delete, name="delete"),
]
