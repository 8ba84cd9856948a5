"""The web front door: Deepgram's live ``/v1/listen`` websocket served by the gateway, for
browsers and for code written against Deepgram's SDKs, plus a page to try it.

Pure modules decide (``query``: query string <-> StreamingConfig; ``messages``: session
responses -> Deepgram JSON, failures -> close codes and HTTP errors; ``tokens``: short-lived
access tokens; ``auth``: credentials, subprotocols, origins; ``routes``: what an HTTP request
asks for); ``listener`` owns the sockets and runs each stream on the same
:class:`gateway.session.Session` as the gRPC service.
"""
