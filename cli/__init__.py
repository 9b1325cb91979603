"""The `stripe-ledger` command line: parse arguments, call a room, print."""
