"""What each loader may construct: the reviewed types, the pickle allow-list, the ONNX graph rules, memory bounds."""
