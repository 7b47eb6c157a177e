"""Notifications: mail through an outbox table (``outbox``) over SMTP (``mail``)."""
