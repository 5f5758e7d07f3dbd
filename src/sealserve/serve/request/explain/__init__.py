"""Explanation routes (KServe V1 `:explain`, the native `/explanation` and `/explanations`) over the data plane."""
