"""A model's life in the server: load, verify, trial, swap, reload, and admin actions applied on every worker."""
