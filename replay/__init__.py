"""Backfills from the Stripe API into the ledger."""
