"""The kernel: names, paths, settings and AWS request checks every layer shares (stdlib + botocore)."""
