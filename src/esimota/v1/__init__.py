"""Generated protobuf and gRPC modules, built from proto/esimota/v1 at install time (never committed)."""
