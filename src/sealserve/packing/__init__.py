"""Pack-time authoring: build a signed bundle, compile it to ONNX. The server never imports this package."""
