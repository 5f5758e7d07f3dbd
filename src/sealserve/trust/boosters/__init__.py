"""XGBoost and LightGBM files: structural checks in Python, then the library's own loader, never pickle."""
