"""Bundle format, signing, keyring and verification; `pack` lives in sealserve.packing.build (it imports pandas)."""
