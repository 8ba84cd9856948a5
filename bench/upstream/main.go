// Command upstream is a scripted Deepgram-compatible /v1/listen websocket server for the relay
// benchmark: it does no recognition and answers audio at once, so that what a client measures
// through it is transport and relay cost only.
//
//	upstream -listen 127.0.0.1:0 -ready-file /tmp/upstream.addr -profile deepgram
//
// Results name the frame that triggered them: their first word is "f<seq>", where seq is the
// little-endian uint64 in the frame's first 8 bytes (the load generator's frame number). Two
// profiles decide which frames are answered:
//
//   - every-frame (the worst case for a relay): every audio frame is answered by exactly one
//     Results message with that one word; results are interim except every -final-every frames,
//     when a final result commits the open segment.
//   - deepgram (Deepgram's live cadence): a frame is answered when the audio received crosses a
//     multiple of -interim-interval (an interim result about every second), and when it crosses
//     a multiple of -final-interval the result is the final one that commits the open segment
//     (about every 3 s). Each result carries the segment's words at -words-per-second, the
//     first of them naming the frame, so a final holds about ten words, as speech does.
//
// KeepAlive is accepted silently, Finalize is answered with a from_finalize final, and
// CloseStream with a final for the open segment, a Metadata message and a close with code 1000.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen address, HOST:PORT (port 0 picks one)")
	readyFile := flag.String("ready-file", "", "write the bound HOST:PORT to this file once serving")
	var p profile
	flag.StringVar(&p.name, "profile", "deepgram", "which frames are answered: deepgram or every-frame")
	flag.IntVar(&p.finalEvery, "final-every", 25, "every-frame: a final result every this many audio frames (at least 2)")
	flag.DurationVar(&p.interimInterval, "interim-interval", time.Second, "deepgram: audio between results")
	flag.DurationVar(&p.finalInterval, "final-interval", 3*time.Second, "deepgram: audio between final results")
	flag.Float64Var(&p.wordsPerSecond, "words-per-second", 2.5, "deepgram: words per second of audio in results")
	flag.Parse()
	// Every message allocates a little; collecting less often costs memory, not CPU.
	debug.SetGCPercent(400)
	if err := p.validate(); err != nil {
		log.Fatalf("upstream: %v", err)
	}
	if err := run(*listen, *readyFile, p); err != nil {
		log.Fatalf("upstream: %v", err)
	}
}

// profile is how the upstream answers audio.
type profile struct {
	name            string
	finalEvery      int
	interimInterval time.Duration
	finalInterval   time.Duration
	wordsPerSecond  float64
}

func (p profile) validate() error {
	switch {
	case p.name != "deepgram" && p.name != "every-frame":
		return fmt.Errorf("-profile must be deepgram or every-frame, got %q", p.name)
	case p.finalEvery < 2:
		return errors.New("-final-every must be at least 2")
	case p.interimInterval <= 0 || p.finalInterval < p.interimInterval:
		return errors.New("-interim-interval must be positive and -final-interval at least as long")
	case p.wordsPerSecond <= 0:
		return errors.New("-words-per-second must be positive")
	}
	return nil
}

func run(listen, readyFile string, p profile) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &server{profile: p}
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/listen", srv.listen)
	httpServer := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = httpServer.Shutdown(shutdown)
	}()
	if readyFile != "" {
		if err := writeAtomically(readyFile, ln.Addr().String()+"\n"); err != nil {
			return err
		}
	}
	log.Printf("upstream: serving /v1/listen on %s", ln.Addr())
	err = httpServer.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		log.Printf("upstream: %d connections served", srv.connections.Load())
		return nil
	}
	return err
}

func writeAtomically(path, text string) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

type server struct {
	profile     profile
	connections atomic.Int64
}

func (s *server) listen(w http.ResponseWriter, r *http.Request) {
	id := requestID()
	w.Header().Set("dg-request-id", id)
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	s.connections.Add(1)
	conn.SetReadLimit(1 << 20)
	bytesPerSecond := 2 * intParam(r, "sample_rate", 16000) * intParam(r, "channels", 1)
	sess := &session{id: id, conn: conn, profile: s.profile, bytesPerSecond: float64(bytesPerSecond)}
	sess.interimBytes = int64(s.profile.interimInterval.Seconds() * float64(bytesPerSecond))
	sess.finalBytes = int64(s.profile.finalInterval.Seconds() * float64(bytesPerSecond))
	err = sess.serve(r.Context())
	var closeErr websocket.CloseError
	switch {
	case err == nil, errors.As(err, &closeErr), errors.Is(err, context.Canceled):
	default:
		conn.Close(websocket.StatusInternalError, "")
	}
}

func intParam(r *http.Request, name string, fallback int) int {
	if v, err := strconv.Atoi(r.URL.Query().Get(name)); err == nil && v > 0 {
		return v
	}
	return fallback
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// session is one connection's state: audio received and the open segment's start.
type session struct {
	id             string
	conn           *websocket.Conn
	profile        profile
	bytesPerSecond float64
	interimBytes   int64 // deepgram: audio bytes between results
	finalBytes     int64 // deepgram: audio bytes between finals

	received     int64 // audio bytes received
	frameBytes   int64 // the load generator's frame size, once known (0: not yet)
	segmentStart float64
	inSegment    int // frames in the open segment
	buf          []byte
}

func (s *session) serve(ctx context.Context) error {
	for {
		kind, data, err := s.conn.Read(ctx)
		if err != nil {
			return err
		}
		if kind == websocket.MessageBinary {
			for _, frame := range s.frames(data) {
				if err := s.audio(ctx, frame); err != nil {
					return err
				}
			}
			continue
		}
		switch controlType(data) {
		case "CloseStream":
			return s.closeStream(ctx)
		case "Finalize":
			if err := s.commit(ctx, s.seconds(s.received), "", true); err != nil {
				return err
			}
		case "KeepAlive":
		default:
			return s.conn.Close(websocket.StatusUnsupportedData, "unknown control message")
		}
	}
}

func (s *session) seconds(n int64) float64 { return float64(n) / s.bytesPerSecond }

// frames splits a message into the load generator's frames: a relay may send several waiting
// frames as one message, and each frame must still be answered as if it had come alone. The
// frame size follows from the stream itself (frame seq starts at byte seq * size); until it is
// known (the first message), a message counts as one frame.
func (s *session) frames(data []byte) [][]byte {
	if s.frameBytes == 0 && s.received > 0 && len(data) >= 8 {
		if seq := int64(binary.LittleEndian.Uint64(data)); seq > 0 && s.received%seq == 0 {
			s.frameBytes = s.received / seq
		}
	}
	size := int(s.frameBytes)
	if size == 0 || len(data) <= size || len(data)%size != 0 {
		return [][]byte{data}
	}
	out := make([][]byte, 0, len(data)/size)
	for i := 0; i < len(data); i += size {
		out = append(out, data[i:i+size])
	}
	return out
}

// audio answers one frame. Interim results cover the open segment up to the end of the frame
// plus one frame of look-ahead, so that every window is longer than the relay's 20 ms tolerance
// for repeated windows. Every finalEvery frames the segment before this frame is committed by a
// final result that still carries this frame's word; the frame then opens the next segment.
func (s *session) audio(ctx context.Context, frame []byte) error {
	if s.profile.name == "deepgram" {
		return s.cadenced(ctx, frame)
	}
	var seq uint64
	if len(frame) >= 8 {
		seq = binary.LittleEndian.Uint64(frame)
	}
	frameStart := s.seconds(s.received)
	s.received += int64(len(frame))
	frameEnd := s.seconds(s.received)
	word := "f" + strconv.FormatUint(seq, 10)
	s.inSegment++
	if s.inSegment >= s.profile.finalEvery && frameStart > s.segmentStart {
		s.buf = appendResult(s.buf[:0], s, s.segmentStart, frameStart-s.segmentStart, true, false,
			word, frameStart, frameEnd)
		s.segmentStart = frameStart
		s.inSegment = 1
	} else {
		lookAhead := frameEnd - frameStart
		s.buf = appendResult(s.buf[:0], s, s.segmentStart, frameEnd+lookAhead-s.segmentStart, false, false,
			word, frameStart, frameEnd)
	}
	return s.conn.Write(ctx, websocket.MessageText, s.buf)
}

// cadenced answers a frame as Deepgram's live API paces its results: only when the audio
// received crosses a multiple of the interim interval, with a final result (committing the open
// segment) when it crosses a multiple of the final interval. Counting in bytes, not seconds,
// lets the load generator know exactly which frames are answered.
func (s *session) cadenced(ctx context.Context, frame []byte) error {
	var seq uint64
	if len(frame) >= 8 {
		seq = binary.LittleEndian.Uint64(frame)
	}
	before := s.received
	s.received += int64(len(frame))
	if s.received/s.interimBytes == before/s.interimBytes {
		return nil
	}
	final := s.received/s.finalBytes != before/s.finalBytes
	end := s.seconds(s.received)
	s.buf = s.appendSpeech(s.buf[:0], s.segmentStart, end, final, "f"+strconv.FormatUint(seq, 10))
	if final {
		s.segmentStart = end
	}
	return s.conn.Write(ctx, websocket.MessageText, s.buf)
}

// appendSpeech writes a Results message for [start, end) with words at the profile's rate,
// evenly spaced, the first one being first.
func (s *session) appendSpeech(b []byte, start, end float64, final bool, first string) []byte {
	n := max(1, int(math.Round((end-start)*s.profile.wordsPerSecond)))
	step := (end - start) / float64(n)
	b = append(b, `{"type":"Results","channel_index":[0,1],"start":`...)
	b = strconv.AppendFloat(b, start, 'f', 6, 64)
	b = append(b, `,"duration":`...)
	b = strconv.AppendFloat(b, end-start, 'f', 6, 64)
	b = append(b, `,"is_final":`...)
	b = strconv.AppendBool(b, final)
	b = append(b, `,"speech_final":`...)
	b = strconv.AppendBool(b, final)
	b = append(b, `,"from_finalize":false,"channel":{"alternatives":[{"transcript":"`...)
	for i := range n {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, fillerWord(i, first)...)
	}
	b = append(b, `","confidence":0.97,"words":[`...)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		w := fillerWord(i, first)
		b = append(b, `{"word":"`...)
		b = append(b, w...)
		b = append(b, `","start":`...)
		b = strconv.AppendFloat(b, start+float64(i)*step, 'f', 6, 64)
		b = append(b, `,"end":`...)
		b = strconv.AppendFloat(b, start+float64(i)*step+0.8*step, 'f', 6, 64)
		b = append(b, `,"confidence":0.97,"punctuated_word":"`...)
		b = append(b, w...)
		b = append(b, `"}`...)
	}
	b = append(b, `]}]},"metadata":{"request_id":"`...)
	b = append(b, s.id...)
	b = append(b, `","model_info":{"name":"bench","version":"1","arch":"none"},"model_uuid":"bench-upstream"}}`...)
	return b
}

// fillerWords are the words after the first: ordinary words of a few letters.
var fillerWords = []string{"the", "weather", "today", "is", "mostly", "sunny", "with", "a", "light", "breeze"}

func fillerWord(i int, first string) string {
	if i == 0 {
		return first
	}
	return fillerWords[i%len(fillerWords)]
}

// commit sends a final result for the open segment (if it holds audio) and starts a new one.
func (s *session) commit(ctx context.Context, end float64, word string, fromFinalize bool) error {
	if end <= s.segmentStart {
		return nil
	}
	s.buf = appendResult(s.buf[:0], s, s.segmentStart, end-s.segmentStart, true, fromFinalize,
		word, s.segmentStart, end)
	s.segmentStart = end
	s.inSegment = 0
	return s.conn.Write(ctx, websocket.MessageText, s.buf)
}

func (s *session) closeStream(ctx context.Context) error {
	duration := s.seconds(s.received)
	if err := s.commit(ctx, duration, "", false); err != nil {
		return err
	}
	s.buf = fmt.Appendf(s.buf[:0],
		`{"type":"Metadata","transaction_key":"deprecated","request_id":%q,"sha256":"","created":%q,`+
			`"duration":%.6f,"channels":1,"models":["bench-upstream"],`+
			`"model_info":{"bench-upstream":{"name":"bench","version":"1","arch":"none"}}}`,
		s.id, time.Now().UTC().Format(time.RFC3339Nano), duration)
	if err := s.conn.Write(ctx, websocket.MessageText, s.buf); err != nil {
		return err
	}
	return s.conn.Close(websocket.StatusNormalClosure, "")
}

// appendResult writes a Results message by hand: it is the hot path, and encoding/json's
// reflection would cost more than everything else this server does.
func appendResult(b []byte, s *session, start, duration float64, final, fromFinalize bool,
	word string, wordStart, wordEnd float64) []byte {
	b = append(b, `{"type":"Results","channel_index":[0,1],"start":`...)
	b = strconv.AppendFloat(b, start, 'f', 6, 64)
	b = append(b, `,"duration":`...)
	b = strconv.AppendFloat(b, duration, 'f', 6, 64)
	b = append(b, `,"is_final":`...)
	b = strconv.AppendBool(b, final)
	b = append(b, `,"speech_final":false,"from_finalize":`...)
	b = strconv.AppendBool(b, fromFinalize)
	b = append(b, `,"channel":{"alternatives":[{"transcript":"`...)
	b = append(b, word...)
	if word == "" {
		b = append(b, `","confidence":0.0,"words":[]}]}`...)
	} else {
		b = append(b, `","confidence":0.99,"words":[{"word":"`...)
		b = append(b, word...)
		b = append(b, `","start":`...)
		b = strconv.AppendFloat(b, wordStart, 'f', 6, 64)
		b = append(b, `,"end":`...)
		b = strconv.AppendFloat(b, wordEnd, 'f', 6, 64)
		b = append(b, `,"confidence":0.99}]}]}`...)
	}
	b = append(b, `,"metadata":{"request_id":"`...)
	b = append(b, s.id...)
	b = append(b, `","model_info":{"name":"bench","version":"1","arch":"none"},"model_uuid":"bench-upstream"}}`...)
	return b
}

// controlType is the "type" of a JSON control message, without decoding the whole object.
func controlType(data []byte) string {
	for _, kind := range []string{"CloseStream", "KeepAlive", "Finalize"} {
		if bytes.Contains(data, []byte(`"type":"`+kind+`"`)) {
			return kind
		}
	}
	return ""
}
