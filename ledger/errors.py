"""The ledger's exceptions. Lower-layer database errors are mapped to these in one place
(ledger.event_log), so callers never import a driver's exception types."""

from __future__ import annotations


class LedgerError(Exception):
    """Base of the ledger's own errors."""


class LedgerUnavailable(LedgerError):
    """The database could not be reached or did not commit: nothing was acknowledged,
    so the sender should retry (the webhook endpoint answers 503)."""


class MalformedEvent(LedgerError, ValueError):
    """A body that is not a Stripe event; the message is one line, safe to return."""
