"""The request path: transport, protocol adapters, the one data plane, batching, and error rendering."""
