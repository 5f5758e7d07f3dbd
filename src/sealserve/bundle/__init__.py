"""Bundle format, signing, keyring and verification; `pack` lives in sealserve.bundle.pack (it imports pandas)."""
