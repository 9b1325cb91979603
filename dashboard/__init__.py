"""The read side served beside the webhook endpoint: a JSON API and a dashboard, both
read-only and both behind the operator's token."""
