"""Everything derived from the ledger: read models and the figures built on them."""
