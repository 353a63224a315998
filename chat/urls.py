from django.urls import path

from chat import views

app_name = "chat"

urlpatterns = [
    path("<int:companion_id>/", views.chat_page, name="page"),
    path("<int:companion_id>/send/", views.send, name="send"),
    path("<int:companion_id>/messages/", views.older, name="older"),
]
