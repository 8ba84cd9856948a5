package transcribe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// drainingServer fails its first call UNAVAILABLE with a ResumePoint at 1 s (after a final
// result up to there), as a draining gateway does, and answers the next call normally.
type drainingServer struct {
	transcribev1.UnimplementedTranscribeServiceServer
	mu      sync.Mutex
	calls   int
	offsets []float64
	audio   [][]byte
	// controls: per call, each control as its kind and the audio bytes of that call before it.
	controls [][]string
	// oddEnds: per call, where audio messages ending within a 16-bit sample end (in the
	// call's own bytes).
	oddEnds [][]int
}

func (d *drainingServer) StreamTranscribe(stream grpc.BidiStreamingServer[transcribev1.StreamTranscribeRequest, transcribev1.StreamTranscribeResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	d.mu.Lock()
	call := d.calls
	d.calls++
	d.offsets = append(d.offsets, first.GetConfig().GetStartOffsetSeconds())
	d.audio = append(d.audio, nil)
	d.controls = append(d.controls, nil)
	d.oddEnds = append(d.oddEnds, nil)
	d.mu.Unlock()
	if err := stream.Send(&transcribev1.StreamTranscribeResponse{Response: &transcribev1.StreamTranscribeResponse_SessionStarted{SessionStarted: &transcribev1.SessionStarted{SessionId: "s"}}}); err != nil {
		return err
	}
	var got []byte
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if c := req.GetControl(); c != nil {
			kind := "keep_alive"
			if c.GetFinalize() != nil {
				kind = "finalize"
			}
			d.mu.Lock()
			d.controls[call] = append(d.controls[call], fmt.Sprintf("%s@%d", kind, len(got)))
			d.mu.Unlock()
		}
		if len(req.GetAudio())%2 != 0 {
			d.mu.Lock()
			d.oddEnds[call] = append(d.oddEnds[call], len(got)+len(req.GetAudio()))
			d.mu.Unlock()
		}
		got = append(got, req.GetAudio()...)
		if call == 0 && len(got) >= 40000 {
			break
		}
	}
	d.mu.Lock()
	d.audio[call] = got
	d.mu.Unlock()
	if call == 0 {
		final := &transcribev1.Result{IsFinal: true, DurationSeconds: 1.0, Alternatives: []*transcribev1.Alternative{{Transcript: "one"}}}
		if err := stream.Send(&transcribev1.StreamTranscribeResponse{Response: &transcribev1.StreamTranscribeResponse_Result{Result: final}}); err != nil {
			return err
		}
		point, _ := anypb.New(&transcribev1.ResumePoint{CommittedSeconds: 1.0, CommittedBytes: 32000, ReceivedSeconds: 1.25})
		return status.FromProto(&spb.Status{Code: int32(codes.Unavailable), Message: "draining", Details: []*anypb.Any{point}}).Err()
	}
	return stream.Send(&transcribev1.StreamTranscribeResponse{Response: &transcribev1.StreamTranscribeResponse_Summary{Summary: &transcribev1.SessionSummary{}}})
}

// openLinear16 opens a 16 kHz linear16 stream to addr, bounded to 20 s; the client closes when
// the test ends.
func openLinear16(t *testing.T, addr string, opts Options) *Stream {
	t.Helper()
	client, err := NewClient(addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	stream, err := client.Stream(ctx, &transcribev1.StreamingConfig{Encoding: transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR16, SampleRate: 16000})
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// serveFake starts a drainingServer on a loopback port, stopped when the test ends.
func serveFake(t *testing.T) (*drainingServer, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	fake := &drainingServer{}
	transcribev1.RegisterTranscribeServiceServer(server, fake)
	go server.Serve(lis)
	t.Cleanup(server.Stop)
	return fake, lis.Addr().String()
}

// recvToEOF reads the stream's responses until it ends, failing the test on an error.
func recvToEOF(t *testing.T, stream *Stream) {
	t.Helper()
	for {
		if _, err := stream.Recv(); errors.Is(err, io.EOF) {
			return
		} else if err != nil {
			t.Fatalf("Recv: %v", err)
		}
	}
}

func TestStreamResumesFromTheCommittedPoint(t *testing.T) {
	fake, addr := serveFake(t)

	var events []ResumeEvent
	stream := openLinear16(t, addr, Options{Resume: ResumeOptions{
		InitialBackoff: time.Millisecond, OnResume: func(e ResumeEvent) { events = append(events, e) },
	}})
	audio := make([]byte, 64000)
	for i := range audio {
		audio[i] = byte(i * 7)
	}
	go func() {
		for i := 0; i < len(audio); i += 3200 {
			_ = stream.Send(audio[i : i+3200])
		}
		_ = stream.CloseSend()
	}()
	var kinds []string
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		switch resp.GetResponse().(type) {
		case *transcribev1.StreamTranscribeResponse_SessionStarted:
			kinds = append(kinds, "session_started")
		case *transcribev1.StreamTranscribeResponse_Result:
			kinds = append(kinds, "result")
		case *transcribev1.StreamTranscribeResponse_Summary:
			kinds = append(kinds, "summary")
		}
	}
	if want := []string{"session_started", "result", "summary"}; len(kinds) != 3 || kinds[0] != want[0] || kinds[1] != want[1] || kinds[2] != want[2] {
		t.Fatalf("responses %v, want %v", kinds, want)
	}
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.calls != 2 || fake.offsets[1] != 1.0 {
		t.Fatalf("calls %d, offsets %v", fake.calls, fake.offsets)
	}
	if !bytes.Equal(fake.audio[1], audio[32000:]) {
		t.Fatalf("the second call got %d bytes, want the %d from byte 32000 on", len(fake.audio[1]), len(audio)-32000)
	}
	if len(events) != 1 || events[0].Err.Code != codes.Unavailable || events[0].StartOffsetSeconds != 1.0 {
		t.Fatalf("resume events %+v", events)
	}
}

func TestStreamWithoutResumeReturnsTheError(t *testing.T) {
	_, addr := serveFake(t)
	stream := openLinear16(t, addr, Options{Resume: ResumeOptions{Disabled: true}})
	go func() { _ = stream.Send(make([]byte, 64000)); _ = stream.CloseSend() }()
	for {
		_, err := stream.Recv()
		if err == nil {
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != codes.Unavailable || e.ResumePoint.GetCommittedBytes() != 32000 {
			t.Fatalf("got %v", err)
		}
		return
	}
}

func TestAResumeSendsTheUncommittedFinalizesAgainAtTheirPlace(t *testing.T) {
	fake, addr := serveFake(t)
	stream := openLinear16(t, addr, Options{Resume: ResumeOptions{InitialBackoff: time.Millisecond}})
	// The first call fails after 40000 bytes with 32000 committed: the Finalize at 16000 is
	// committed, the KeepAlive at 35200 was sent live, the one at 48000 comes after the resend
	// point. Pieces of 3201 bytes cut frames, which must go whole all the same.
	go func() {
		audio := make([]byte, 64000)
		for pos := 0; pos < len(audio); {
			switch pos {
			case 16005:
				_ = stream.Finalize()
			case 35211:
				_ = stream.KeepAlive()
			case 48015:
				_ = stream.Finalize()
			}
			n := min(3201, len(audio)-pos)
			_ = stream.Send(audio[pos : pos+n])
			pos += n
		}
		_ = stream.CloseSend()
	}()
	recvToEOF(t, stream)
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if fake.calls != 2 {
		t.Fatalf("calls %d", fake.calls)
	}
	if got := fake.controls[0]; len(got) < 2 || got[0] != "finalize@16005" || got[1] != "keep_alive@35211" {
		t.Errorf("the first call got controls %v", got)
	}
	if got := fake.controls[1]; len(got) != 1 || got[0] != fmt.Sprintf("finalize@%d", 48015-32000) {
		t.Errorf("the second call got controls %v, want the last finalize again at 16015", got)
	}
	if len(fake.audio[1]) != 64000-32000 {
		t.Errorf("the second call got %d bytes", len(fake.audio[1]))
	}
}

func TestRawAudioGoesInWholeFrames(t *testing.T) {
	fake, addr := serveFake(t)
	// A small bound makes Send wait for the sender, so that messages follow the pieces given
	// rather than whatever has piled up.
	stream := openLinear16(t, addr, Options{Resume: ResumeOptions{MaxBufferBytes: 4000}})
	audio := make([]byte, 30001) // less than the fake fails at; the odd last byte goes at the end
	for i := range audio {
		audio[i] = byte(i * 7)
	}
	go func() {
		for pos := 0; pos < len(audio); pos += 3201 { // pieces as a pipe delivers them
			_ = stream.Send(audio[pos:min(pos+3201, len(audio))])
		}
		_ = stream.CloseSend()
	}()
	recvToEOF(t, stream)
	fake.mu.Lock()
	defer fake.mu.Unlock()
	if !bytes.Equal(fake.audio[0], audio) {
		t.Fatalf("the call got %d bytes, want %d", len(fake.audio[0]), len(audio))
	}
	if got := fake.oddEnds[0]; len(got) != 1 || got[0] != len(audio) {
		t.Errorf("audio messages end within a sample at %v, want only the audio's end %d", got, len(audio))
	}
}
