from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views.i18n import JavaScriptCatalog

from accounts import views as accounts_views
from chat import search_views
from companionhub import views

admin.site.site_header = _("CompanionHub moderation")
admin.site.site_title = _("CompanionHub admin")
admin.site.index_title = _("Moderation")

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon, name="favicon"),
    path("metrics", views.metrics, name="metrics"),
    # Django's set_language (CSRF-checked POST) plus saving a signed-in user's choice.
    path("i18n/setlang/", accounts_views.language_set, name="set_language"),
    # The chat script's strings (gettext, ngettext, interpolate), in the request's language.
    path("i18n/js/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("accounts/", include("accounts.urls")),
    path("accounts/exports/", include("portability.urls")),
    path("companions/", include("companions.urls")),
    path("lorebooks/", include("lorebooks.urls")),
    path("companions/<int:companion_id>/memories/", include("memories.urls")),
    path("chat/", include("chat.urls")),
    path("search/", search_views.search, name="search"),
    path("groups/", include("chat.group_urls")),
    path("media/", include("media.urls")),
    path("admin/", admin.site.urls),
]
