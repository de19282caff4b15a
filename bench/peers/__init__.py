"""Peers the service is measured against, real programs run side by side on the same broker:
`kcat` (the C client's ceiling)."""
