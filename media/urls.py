from django.urls import path

from media import views

app_name = "media"

urlpatterns = [
    path("images/<uuid:image_id>.jpg", views.image, name="image"),
]
