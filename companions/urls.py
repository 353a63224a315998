from django.urls import path

from companions import views

app_name = "companions"

urlpatterns = [
    path("", views.companion_list, name="list"),
    path("start/", views.first_companion, name="start"),
    path("new/", views.wizard_start, name="wizard_start"),
    path("new/<int:step>/", views.wizard, name="wizard"),
    path("new/discard/", views.wizard_discard, name="wizard_discard"),
    path("import/", views.card_import, name="card_import"),
    path("export/cards.zip", views.cards_export_all, name="cards_export_all"),
    path("<int:companion_id>/", views.companion_detail, name="detail"),
    path("<int:companion_id>/settings/", views.companion_settings, name="settings"),
    path("<int:companion_id>/card.json", views.card_export_json, name="card_export_json"),
    path("<int:companion_id>/card.png", views.card_export_png, name="card_export_png"),
    path("<int:companion_id>/card.charx", views.card_export_charx, name="card_export_charx"),
    path("<int:companion_id>/reroll-seed/", views.companion_reroll_seed, name="reroll_seed"),
    path("<int:companion_id>/card-book/", views.companion_start_card_book, name="start_card_book"),
    path("<int:companion_id>/delete/", views.companion_delete, name="delete"),
    path("gallery/", views.gallery, name="gallery"),
]
