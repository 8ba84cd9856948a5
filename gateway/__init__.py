"""A gRPC gateway for live speech-to-text.

Clients open one bidirectional ``StreamTranscribe`` stream (see
``proto/transcribe/v1/transcribe.proto``); the gateway relays the audio to Deepgram's live
websocket API, or to its embedded offline engine, and streams transcripts back.
"""

__version__ = "0.1.0"
