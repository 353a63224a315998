from django.urls import path

from chat import backend_views, views

app_name = "chat"

urlpatterns = [
    path("<int:companion_id>/", views.chat_page, name="page"),
    path("<int:companion_id>/send/", views.send, name="send"),
    path("<int:companion_id>/messages/", views.older, name="older"),
    path("<int:companion_id>/model/", backend_views.companion_model, name="model"),
    path(
        "<int:companion_id>/pictures/<int:message_id>/paint-again/",
        views.picture_paint_again,
        name="picture_paint_again",
    ),
    path(
        "<int:companion_id>/pictures/<int:message_id>/use-as-header/",
        views.picture_use_as_header,
        name="picture_use_as_header",
    ),
    path("<int:companion_id>/pictures/<int:message_id>/delete/", views.picture_delete, name="picture_delete"),
]
