"""Chat commands for subscribers and operators (parsing, authorisation, replies).

Handlers call services from `bot/` and repositories from `storage/`; they never talk HTTP.
"""
