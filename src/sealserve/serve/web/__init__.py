"""The web page, /docs and the OpenAPI contract."""
