"""Pure protocol logic: no sockets, no event loop, no gRPC context.

``deepgram`` turns a StreamingConfig into Deepgram's query string and Deepgram's JSON into
proto messages; ``outcome`` decides what an upstream failure means; ``timeline`` keeps one
time base across reconnects; ``audio`` knows how raw encodings map time to bytes.
"""
