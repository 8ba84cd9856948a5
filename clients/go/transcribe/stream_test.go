package transcribe

import (
	"bytes"
	"context"
	"errors"
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

func TestStreamResumesFromTheCommittedPoint(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	fake := &drainingServer{}
	transcribev1.RegisterTranscribeServiceServer(server, fake)
	go server.Serve(lis)
	defer server.Stop()

	var events []ResumeEvent
	client, err := NewClient(lis.Addr().String(), Options{Resume: ResumeOptions{
		InitialBackoff: time.Millisecond, OnResume: func(e ResumeEvent) { events = append(events, e) },
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, _ := client.Stream(ctx, &transcribev1.StreamingConfig{Encoding: transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR16, SampleRate: 16000})
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
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := grpc.NewServer()
	transcribev1.RegisterTranscribeServiceServer(server, &drainingServer{})
	go server.Serve(lis)
	defer server.Stop()
	client, _ := NewClient(lis.Addr().String(), Options{Resume: ResumeOptions{Disabled: true}})
	defer client.Close()
	stream, _ := client.Stream(context.Background(), &transcribev1.StreamingConfig{Encoding: transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR16, SampleRate: 16000})
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
