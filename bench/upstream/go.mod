module github.com/transcribe-gateway/bench/upstream

go 1.26.0

require github.com/coder/websocket v1.8.15
