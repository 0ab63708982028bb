"""Comms: per-project settings, subscriptions, the weekly digest, one-click unsubscribe, Mailgun webhooks."""
