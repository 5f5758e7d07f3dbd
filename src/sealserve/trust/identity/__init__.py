"""Trust by identity: the verifiers (keyring key, certificate chain, Sigstore) and the policy of who may sign which model."""
