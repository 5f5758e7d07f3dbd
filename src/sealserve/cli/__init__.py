"""The `sealserve` command line."""
