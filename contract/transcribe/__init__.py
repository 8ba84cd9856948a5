"""The transcribe gRPC contract, generated from proto/transcribe (see the package README)."""
