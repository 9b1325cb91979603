"""The immutable, append-only Stripe event log: settings, engines, schema, appends, reads."""
