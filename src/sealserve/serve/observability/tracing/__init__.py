"""OpenTelemetry traces over OTLP: settings, request spans, and the process that exports them."""
