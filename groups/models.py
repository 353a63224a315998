"""Group chats live in ``chat`` now (a conversation with two to six companions).

This app keeps only its migration history, so a database made before the
fold can migrate: ``chat``'s migration 0010 moves its rows and this app's
0004 drops its tables.
"""
