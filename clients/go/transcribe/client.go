// Package transcribe is the Go client library for the transcription gateway's
// transcribe.v1.TranscribeService/StreamTranscribe stream.
//
//	client, err := transcribe.NewClient("127.0.0.1:50051", transcribe.Options{})
//	stream, err := client.Stream(ctx, &transcribev1.StreamingConfig{...})
//	go func() { stream.Send(pcm); stream.CloseSend() }()
//	for resp, err := stream.Recv(); err == nil; resp, err = stream.Recv() { ... }
//
// A Stream resumes by itself: when a call ends UNAVAILABLE with a ResumePoint (a replica
// draining in a rolling restart, or the gateway's upstream retries exhausted), it opens a new
// call to the same address after a backoff, sets start_offset_seconds to the committed point,
// resends the audio it kept from there, and Recv goes on with one transcript on one time base.
package transcribe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// maxChunkBytes is the most audio per request message the Stream writes.
const maxChunkBytes = 32 * 1024

// ResumeOptions says how a Stream resumes. The zero value means the defaults, resume on.
type ResumeOptions struct {
	Disabled       bool          // end with the error instead
	MaxAttempts    int           // resumes in a row without a new final result (default 5)
	MaxBufferBytes int64         // most uncommitted audio kept (default 8 MiB)
	InitialBackoff time.Duration // default 200 ms
	MaxBackoff     time.Duration // default 5 s
	// OnResume is called (on the Stream's goroutine) before each new call.
	OnResume func(ResumeEvent)
}

// ResumeEvent describes a resume: how the last call ended and what the next one sends.
type ResumeEvent struct {
	Attempt            int
	Err                *Error
	StartOffsetSeconds float64
	ResendBytes        int64
	Delay              time.Duration
}

// Options configure a Client.
type Options struct {
	Token       string // sent as "authorization: Bearer TOKEN"
	TLS         bool   // TLS with the system's roots
	CAFile      string // TLS trusting these PEM roots instead (implies TLS)
	DialOptions []grpc.DialOption
	Resume      ResumeOptions
}

// Client is a connection to a gateway (or a balancer in front of replicas).
type Client struct {
	conn *grpc.ClientConn
	opts Options
}

// NewClient prepares a connection to addr (HOST:PORT); it connects on first use.
func NewClient(addr string, opts Options) (*Client, error) {
	creds, err := transportCredentials(opts)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr, append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, opts.DialOptions...)...)
	if err != nil {
		return nil, err
	}
	r := &opts.Resume
	if r.MaxAttempts == 0 {
		r.MaxAttempts = 5
	}
	if r.MaxBufferBytes == 0 {
		r.MaxBufferBytes = 8 << 20
	}
	if r.InitialBackoff == 0 {
		r.InitialBackoff = 200 * time.Millisecond
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = 5 * time.Second
	}
	return &Client{conn: conn, opts: opts}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func transportCredentials(o Options) (credentials.TransportCredentials, error) {
	if !o.TLS && o.CAFile == "" {
		return insecure.NewCredentials(), nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate found", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	return credentials.NewTLS(cfg), nil
}

// Stream is one transcription, over one or more calls. Send, Finalize and CloseSend may be
// called from one goroutine while another calls Recv.
type Stream struct {
	client *Client
	ctx    context.Context
	cancel context.CancelFunc
	cfg    *transcribev1.StreamingConfig
	format *RawFormat // nil: nothing to resume by
	opts   ResumeOptions
	// frameBytes: raw audio goes in whole sample frames (1 for containerised audio).
	frameBytes int64

	mu       sync.Mutex
	changed  *sync.Cond
	buf      AudioBuffer
	controls ControlLog
	closed   bool  // CloseSend was called
	sentTo   int64 // one past the last byte the current call has sent

	out chan *transcribev1.StreamTranscribeResponse
	err error // why out was closed: io.EOF or an *Error
}

// Stream starts a transcription with cfg; responses come from Recv. Cancel ctx to cancel it.
func (c *Client) Stream(ctx context.Context, cfg *transcribev1.StreamingConfig) (*Stream, error) {
	if cfg == nil {
		cfg = &transcribev1.StreamingConfig{}
	}
	ctx, cancel := context.WithCancel(ctx)
	if c.opts.Token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.opts.Token)
	}
	s := &Stream{
		client: c, ctx: ctx, cancel: cancel, cfg: cfg, opts: c.opts.Resume,
		buf: AudioBuffer{MaxBytes: c.opts.Resume.MaxBufferBytes},
		out: make(chan *transcribev1.StreamTranscribeResponse, 64),
	}
	s.frameBytes = 1
	if f := RawFormatOf(cfg); f != nil {
		s.frameBytes = f.FrameBytes()
		if !s.opts.Disabled {
			s.format = f
		}
	}
	if s.buf.MaxBytes < s.frameBytes {
		cancel()
		return nil, fmt.Errorf("MaxBufferBytes (%d) must hold a sample frame (%d bytes)", s.buf.MaxBytes, s.frameBytes)
	}
	s.changed = sync.NewCond(&s.mu)
	context.AfterFunc(ctx, func() { s.mu.Lock(); s.changed.Broadcast(); s.mu.Unlock() })
	go s.run()
	return s, nil
}

// Send queues audio; it blocks while the kept audio is at its bound and not yet sent. Raw
// audio goes out in whole sample frames: a frame cut short waits for its rest (or CloseSend).
func (s *Stream) Send(audio []byte) error {
	// Pieces leave room for a frame cut short that waits unsent for its rest.
	pieceBytes := s.buf.MaxBytes - s.frameBytes + 1
	for len(audio) > 0 {
		piece := audio[:min(int64(len(audio)), pieceBytes)]
		audio = audio[len(piece):]
		s.mu.Lock()
		for s.buf.Room(s.sentTo) < int64(len(piece)) && s.ctx.Err() == nil && !s.closed {
			s.changed.Wait()
		}
		if err := s.ctx.Err(); err != nil || s.closed {
			s.mu.Unlock()
			return errors.Join(errors.New("the stream is closed"), err)
		}
		_ = s.buf.Append(piece, s.sentTo) // Room said it fits
		s.changed.Broadcast()
		s.mu.Unlock()
	}
	return nil
}

// Finalize asks the upstream to finalize the audio sent so far (in order with the audio). A
// resume that resends audio from before it sends it again at the same place.
func (s *Stream) Finalize() error {
	return s.SendControl(&transcribev1.Control{Command: &transcribev1.Control_Finalize{Finalize: &transcribev1.Finalize{}}})
}

// KeepAlive sends a KeepAlive in order with the audio (never resent: it only matters live).
func (s *Stream) KeepAlive() error {
	return s.SendControl(&transcribev1.Control{Command: &transcribev1.Control_KeepAlive{KeepAlive: &transcribev1.KeepAlive{}}})
}

// SendControl queues c after the audio sent so far; it blocks while the kept controls are at
// their bound and not yet sent. A resume sends a Finalize again at its place
// (clients/testdata/README.md, controls.json).
func (s *Stream) SendControl(c *transcribev1.Control) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.controls.Room() && s.ctx.Err() == nil && !s.closed {
		s.changed.Wait()
	}
	if err := s.ctx.Err(); err != nil || s.closed {
		return errors.Join(errors.New("the stream is closed"), err)
	}
	if err := s.controls.Add(s.buf.End(), c, s.format != nil); err != nil {
		return err
	}
	s.changed.Broadcast()
	return nil
}

// CloseSend says there is no more audio: the remaining results and the summary follow.
func (s *Stream) CloseSend() error {
	s.mu.Lock()
	s.closed = true
	s.changed.Broadcast()
	s.mu.Unlock()
	return nil
}

// Recv returns the next response; io.EOF after the summary of a stream that ended OK, an
// *Error when it failed (and could not be resumed).
func (s *Stream) Recv() (*transcribev1.StreamTranscribeResponse, error) {
	resp, ok := <-s.out
	if !ok {
		return nil, s.err
	}
	return resp, nil
}

// Cancel ends the stream at once; Recv then returns CANCELLED.
func (s *Stream) Cancel() { s.cancel() }

func (s *Stream) deliver(resp *transcribev1.StreamTranscribeResponse) bool {
	select {
	case s.out <- resp:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// run opens calls until one ends OK or cannot be resumed.
func (s *Stream) run() {
	defer close(s.out)
	defer s.cancel()
	var startByte, startSeq int64
	offset := s.cfg.GetStartOffsetSeconds()
	attempt, openedOnce := 0, false
	stub := transcribev1.NewTranscribeServiceClient(s.client.conn)
	for {
		outcome := s.call(stub, startByte, startSeq, offset, &openedOnce)
		if outcome.err == nil {
			s.err = io.EOF
			return
		}
		e := outcome.err
		if s.format == nil || e.Code != codes.Unavailable {
			s.err = e
			return
		}
		var plan ResumePlan
		switch {
		case e.ResumePoint != nil:
			s.mu.Lock()
			p, ok := PlanResume(s.format, startByte, e.ResumePoint, s.buf.KeptFrom())
			s.mu.Unlock()
			if !ok {
				s.err = e
				return
			}
			plan = p
		case attempt > 0 && !outcome.opened:
			plan = ResumePlan{StartOffsetSeconds: offset, ResendFromByte: startByte} // refused: again
		default:
			s.err = e
			return
		}
		if outcome.progressed {
			attempt = 1
		} else {
			attempt++
		}
		if attempt > s.opts.MaxAttempts {
			s.err = e
			return
		}
		delay := Backoff(attempt, s.opts.InitialBackoff, s.opts.MaxBackoff)
		s.mu.Lock()
		resend := s.sentTo - plan.ResendFromByte
		s.buf.DropBefore(plan.ResendFromByte)
		startSeq = s.controls.Rewind(plan.ResendFromByte)
		// The bound counts as sent only what the next call has sent.
		s.sentTo = plan.ResendFromByte
		s.mu.Unlock()
		if s.opts.OnResume != nil {
			s.opts.OnResume(ResumeEvent{attempt, e, plan.StartOffsetSeconds, resend, delay})
		}
		startByte, offset = plan.ResendFromByte, plan.StartOffsetSeconds
		select {
		case <-time.After(delay):
		case <-s.ctx.Done():
			s.err = &Error{Code: codes.Canceled, Message: context.Cause(s.ctx).Error()}
			return
		}
	}
}

type callOutcome struct {
	err        *Error // nil: ended OK
	opened     bool   // session_started arrived
	progressed bool   // a final result arrived
}

// call runs one StreamTranscribe call from startByte and control startSeq with
// start_offset_seconds offset.
func (s *Stream) call(stub transcribev1.TranscribeServiceClient, startByte, startSeq int64, offset float64, openedOnce *bool) (outcome callOutcome) {
	callCtx, cancelCall := context.WithCancel(s.ctx)
	defer cancelCall()
	cfg := proto.Clone(s.cfg).(*transcribev1.StreamingConfig)
	cfg.StartOffsetSeconds = offset
	stream, err := stub.StreamTranscribe(callCtx)
	if err != nil {
		return callOutcome{err: asError(err)}
	}
	opened, paused := make(chan struct{}), make(chan struct{})
	senderDone := make(chan struct{})
	go func() {
		defer close(senderDone)
		s.send(callCtx, stream, cfg, startByte, startSeq, opened, paused)
	}()
	defer func() { cancelCall(); <-senderDone }()

	delivered := make([]float64, max(s.cfg.GetChannels(), 1))
	for i := range delivered {
		delivered[i] = offset
	}
	var summary *transcribev1.StreamTranscribeResponse
	pausedOnce, openedNow := false, false
	for {
		resp, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				if summary != nil {
					s.deliver(summary)
				}
				return callOutcome{opened: openedNow}
			}
			outcome.err, outcome.opened = asError(err), openedNow
			return outcome
		}
		switch resp.GetResponse().(type) {
		case *transcribev1.StreamTranscribeResponse_SessionStarted:
			if !openedNow {
				openedNow = true
				close(opened)
			}
			if *openedOnce {
				continue
			}
			*openedOnce = true
		case *transcribev1.StreamTranscribeResponse_Summary:
			summary = resp // delivered only if this call is the last
			continue
		case *transcribev1.StreamTranscribeResponse_UpstreamEvent:
			if resp.GetUpstreamEvent().GetGoingAway() != nil && !pausedOnce {
				pausedOnce = true
				close(paused)
				s.mu.Lock()
				s.changed.Broadcast()
				s.mu.Unlock()
			}
		case *transcribev1.StreamTranscribeResponse_Result:
			r := resp.GetResult()
			if r.GetIsFinal() && s.format != nil {
				if ch := int(r.GetChannelIndex()); ch < len(delivered) {
					delivered[ch] = max(delivered[ch], r.GetStartSeconds()+r.GetDurationSeconds())
					committed := delivered[0]
					for _, d := range delivered {
						committed = min(committed, d)
					}
					s.mu.Lock()
					keep := min(CommitByte(*s.format, startByte, offset, committed), s.sentTo)
					s.buf.DropBefore(keep)
					s.controls.Commit(keep)
					s.changed.Broadcast()
					s.mu.Unlock()
				}
				outcome.progressed = true
			}
		}
		if !s.deliver(resp) {
			return callOutcome{err: &Error{Code: codes.Canceled, Message: "cancelled"}}
		}
	}
}

// send writes the config, then (once the session is open) the kept audio and controls from
// pos and control seq on as they come, then half-closes. After going_away it writes nothing
// more: grpc-go would report a write racing with the call's end, and the gateway takes no more
// audio anyway.
func (s *Stream) send(ctx context.Context, stream grpc.BidiStreamingClient[transcribev1.StreamTranscribeRequest, transcribev1.StreamTranscribeResponse], cfg *transcribev1.StreamingConfig, pos, seq int64, opened, paused <-chan struct{}) {
	if stream.Send(&transcribev1.StreamTranscribeRequest{Request: &transcribev1.StreamTranscribeRequest_Config{Config: cfg}}) != nil {
		return
	}
	select {
	case <-opened:
	case <-ctx.Done():
		return
	}
	isPaused := func() bool {
		select {
		case <-paused:
			return true
		default:
			return false
		}
	}
	// next is the control still to send and where the audio message from pos would end.
	next := func() (*PlacedControl, int64) {
		c, at := s.controls.Next(seq), int64(-1)
		if c != nil {
			at = c.At
		}
		return c, SendUntil(pos, s.buf.End(), s.frameBytes, maxChunkBytes, s.closed, at)
	}
	for {
		s.mu.Lock()
		ctl, until := next()
		for (ctl == nil || ctl.At > pos) && until == pos && !s.closed && !isPaused() && ctx.Err() == nil {
			s.changed.Wait()
			ctl, until = next()
		}
		if isPaused() || ctx.Err() != nil {
			s.mu.Unlock()
			return
		}
		var req *transcribev1.StreamTranscribeRequest
		switch {
		case ctl != nil && ctl.At <= pos:
			req = &transcribev1.StreamTranscribeRequest{Request: &transcribev1.StreamTranscribeRequest_Control{Control: ctl.Req}}
			seq = ctl.Seq + 1
			s.controls.Sent(ctl)
			s.changed.Broadcast()
		case until > pos:
			data, err := s.buf.Read(pos, int(until-pos))
			if err != nil { // cannot happen: the bound never drops unsent audio
				s.mu.Unlock()
				return
			}
			pos = until
			s.sentTo = max(s.sentTo, pos)
			if s.format == nil {
				s.buf.DropBefore(pos) // nothing to resend: keep nothing
			}
			s.changed.Broadcast()
			req = &transcribev1.StreamTranscribeRequest{Request: &transcribev1.StreamTranscribeRequest_Audio{Audio: data}}
		default: // closed, everything sent
			s.mu.Unlock()
			_ = stream.CloseSend()
			return
		}
		s.mu.Unlock()
		if stream.Send(req) != nil {
			return // Recv reports the call's status
		}
	}
}

// asError turns what a call returned into an *Error.
func asError(err error) *Error {
	if st, ok := status.FromError(err); ok {
		return FromStatus(st)
	}
	return &Error{Code: codes.Unknown, Message: err.Error()}
}
