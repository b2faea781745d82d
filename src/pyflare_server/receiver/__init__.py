"""OTLP receivers (HTTP and gRPC) and the decoder they share."""
