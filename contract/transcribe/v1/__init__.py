"""transcribe.v1: messages (transcribe_pb2) and the TranscribeService stubs (transcribe_pb2_grpc)."""
