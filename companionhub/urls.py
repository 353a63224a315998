from django.contrib import admin
from django.urls import include, path

from chat import search_views
from companionhub import views

admin.site.site_header = "CompanionHub moderation"
admin.site.site_title = "CompanionHub admin"
admin.site.index_title = "Moderation"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", views.metrics, name="metrics"),
    path("accounts/", include("accounts.urls")),
    path("accounts/exports/", include("portability.urls")),
    path("companions/", include("companions.urls")),
    path("chat/", include("chat.urls")),
    path("search/", search_views.search, name="search"),
    path("groups/", include("chat.group_urls")),
    path("media/", include("media.urls")),
    path("admin/", admin.site.urls),
]
