"""Exporting a fitted model to ONNX, with exact double-threshold trees and XGBoost/LightGBM boosters."""
