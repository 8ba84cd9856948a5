"""The upstream side: a websocket connection to a Deepgram-compatible ``/v1/listen`` endpoint
(``connection``) and the retry policy around opening one (``retry``)."""
