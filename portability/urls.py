from django.urls import path

from portability import views

app_name = "portability"

urlpatterns = [
    path("", views.export_start, name="start"),
    path("<uuid:export_id>/status/", views.export_status, name="status"),
    path("<uuid:export_id>/download/", views.export_download, name="download"),
]
