package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/coder/websocket"
)

// wsDialer opens websocket connections straight to the upstream, one per stream.
type wsDialer struct{ url string }

func (d *wsDialer) open(ctx context.Context, _ int) (streamConn, error) {
	conn, resp, err := websocket.Dial(ctx, d.url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, err
	}
	if resp.Header.Get("dg-request-id") == "" {
		conn.CloseNow()
		return nil, errors.New("handshake response has no dg-request-id")
	}
	conn.SetReadLimit(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	return &wsStream{conn: conn, ctx: ctx, cancel: cancel}, nil
}

type wsStream struct {
	conn   *websocket.Conn
	ctx    context.Context
	cancel context.CancelFunc
}

func (w *wsStream) sendAudio(frame []byte) error {
	return w.conn.Write(w.ctx, websocket.MessageBinary, frame)
}

func (w *wsStream) closeSend() error {
	return w.conn.Write(w.ctx, websocket.MessageText, []byte(`{"type":"CloseStream"}`))
}

var wordPrefix = []byte(`"words":[{"word":"`)

func (w *wsStream) next() (uint64, bool, error) {
	kind, data, err := w.conn.Read(w.ctx)
	if err != nil {
		if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
			w.cancel()
			return 0, false, io.EOF
		}
		return 0, false, err
	}
	if kind != websocket.MessageText {
		return 0, false, fmt.Errorf("unexpected binary message of %d bytes", len(data))
	}
	// The first word of a Results message, found without decoding the whole JSON.
	i := bytes.Index(data, wordPrefix)
	if i < 0 {
		return 0, false, nil
	}
	rest := data[i+len(wordPrefix):]
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return 0, false, nil
	}
	return frameNumber(string(rest[:end]))
}

func (w *wsStream) abort() {
	w.cancel()
	w.conn.CloseNow()
}
