package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// grpcDialer opens StreamTranscribe calls, streamsPerConn of them per HTTP/2 connection.
type grpcDialer struct {
	o     options
	mu    sync.Mutex
	conns []*grpc.ClientConn
}

func newGRPCDialer(o options) (*grpcDialer, error) {
	d := &grpcDialer{o: o}
	n := (o.streams + o.streamsPerConn - 1) / o.streamsPerConn
	for range n {
		conn, err := grpc.NewClient(o.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			d.close()
			return nil, err
		}
		d.conns = append(d.conns, conn)
	}
	return d, nil
}

func (d *grpcDialer) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		_ = c.Close()
	}
	d.conns = nil
}

func (d *grpcDialer) open(ctx context.Context, index int) (streamConn, error) {
	d.mu.Lock()
	conn := d.conns[index/d.o.streamsPerConn]
	d.mu.Unlock()
	// The call outlives the opening phase: it gets its own context, cancelled by abort.
	callCtx, cancel := context.WithCancel(context.Background())
	stream, err := transcribev1.NewTranscribeServiceClient(conn).StreamTranscribe(callCtx)
	if err != nil {
		cancel()
		return nil, err
	}
	config := &transcribev1.StreamingConfig{
		Encoding:       transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR16,
		SampleRate:     uint32(d.o.sampleRate),
		InterimResults: proto.Bool(true),
	}
	if err := stream.Send(&transcribev1.StreamTranscribeRequest{
		Request: &transcribev1.StreamTranscribeRequest_Config{Config: config},
	}); err != nil {
		cancel()
		return nil, err
	}
	// The stream is open once the gateway says its upstream session started.
	started := make(chan error, 1)
	go func() {
		resp, err := stream.Recv()
		if err == nil && resp.GetSessionStarted() == nil {
			err = fmt.Errorf("first response is not session_started: %v", resp)
		}
		started <- err
	}()
	select {
	case err = <-started:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		cancel()
		return nil, err
	}
	return &grpcStream{stream: stream, cancel: cancel}, nil
}

type grpcStream struct {
	stream grpc.BidiStreamingClient[transcribev1.StreamTranscribeRequest, transcribev1.StreamTranscribeResponse]
	cancel context.CancelFunc
	audio  transcribev1.StreamTranscribeRequest_Audio
	req    transcribev1.StreamTranscribeRequest
}

func (g *grpcStream) sendAudio(frame []byte) error {
	// Send marshals the request before it returns, so one request value serves every frame.
	g.audio.Audio = frame
	g.req.Request = &g.audio
	return g.stream.Send(&g.req)
}

func (g *grpcStream) closeSend() error { return g.stream.CloseSend() }

func (g *grpcStream) next() (uint64, bool, error) {
	resp, err := g.stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			g.cancel()
		}
		return 0, false, err
	}
	result := resp.GetResult()
	if result == nil || len(result.GetAlternatives()) == 0 || len(result.GetAlternatives()[0].GetWords()) == 0 {
		return 0, false, nil
	}
	return frameNumber(result.GetAlternatives()[0].GetWords()[0].GetWord())
}

func (g *grpcStream) abort() { g.cancel() }

// frameNumber reads "f<seq>".
func frameNumber(word string) (uint64, bool, error) {
	digits, found := strings.CutPrefix(word, "f")
	if !found {
		return 0, false, nil
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, false, nil
	}
	return seq, true, nil
}
