"""The ASGI app: verify Stripe's signature, append the event to the ledger, answer."""
