from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_out
        from django.core.signals import request_finished

        from accounts.language import language_reset
        from accounts.services import close_session_sockets, rate_limit_record
        from accounts.usage import usage_totals
        from companionhub import metrics, ratelimits

        # Channels checks the session only when a socket connects: signing out
        # must also close the chat sockets this browser still has open.
        user_logged_out.connect(close_session_sockets, dispatch_uid="accounts.close_session_sockets")
        # A request's language ends with it (LocaleMiddleware leaves it active on the thread).
        request_finished.connect(language_reset, dispatch_uid="accounts.language_reset")
        # companionhub's rate limits import no app: accounts records their refusals for moderators.
        ratelimits.register_recorder(rate_limit_record)
        # /metrics counts tokens and pictures from the usage ledger, which accounts keeps.
        metrics.register_usage_totals(usage_totals)
