package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/transcribe-gateway/clients/go/transcribe"
)

// audioSource is the audio to send and the plan that says how.
type audioSource struct {
	io.Reader
	io.Closer
	plan  transcribe.AudioPlan
	paced bool // sent at real-time pace unless --fast
	live  bool // a pipe or an HTTP stream: read returns what has arrived
	label string
}

// read fills buf from a file, or returns what has arrived from a live input.
func (s *audioSource) read(buf []byte) (int, error) {
	if s.live {
		return s.Reader.Read(buf)
	}
	n, err := io.ReadFull(s.Reader, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil // the last chunk is a short one; the next read says io.EOF
	}
	return n, err
}

// openAudio opens --file (a path, or - for stdin) or --url and plans what to send by the rules
// every language's client shares (clients/testdata/README.md).
func openAudio(ctx context.Context, o *options) (*audioSource, error) {
	if o.url != "" {
		return openURL(ctx, o)
	}
	src := &audioSource{label: o.file, paced: true}
	var in io.ReadCloser = os.Stdin
	if o.file == "-" {
		src.label, src.live, src.paced = "stdin", true, false // a pipe comes at its own pace
	} else {
		f, err := os.Open(o.file)
		if err != nil {
			return nil, inputError(codes.InvalidArgument, o.file, err)
		}
		in = f
	}
	// Read the head until the plan is known (a pipe may deliver a WAV header in pieces).
	var head []byte
	buf := make([]byte, 64*1024)
	for {
		n, err := in.Read(buf)
		head = append(head, buf[:n]...)
		ended := errors.Is(err, io.EOF)
		if err != nil && !ended {
			in.Close()
			return nil, inputError(codes.InvalidArgument, src.label, err)
		}
		plan, ok := transcribe.PlanAudio(head, o.encoding, uint32(o.sampleRate), int(o.chunkMs), ended)
		if ok {
			src.plan = plan
			break
		}
	}
	p := src.plan
	if p.Raw() && p.SampleRate == 0 {
		in.Close()
		return nil, status.Errorf(codes.InvalidArgument, "raw audio needs --sample-rate")
	}
	var r io.Reader = io.MultiReader(bytes.NewReader(head[min(p.PayloadOffset, len(head)):]), in)
	if p.PayloadBytes >= 0 {
		r = io.LimitReader(r, p.PayloadBytes)
	}
	src.Reader, src.Closer = r, in
	return src, nil
}

func openURL(ctx context.Context, o *options) (*audioSource, error) {
	plan, _ := transcribe.PlanAudio(nil, o.encoding, uint32(o.sampleRate), int(o.chunkMs), true)
	src := &audioSource{plan: plan, live: true, paced: plan.Raw(), label: o.url}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.url, nil)
	if err != nil {
		return nil, inputError(codes.InvalidArgument, o.url, err)
	}
	req.Header.Set("User-Agent", "transcribe-client")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, inputError(codes.Unavailable, o.url, err)
	}
	if resp.StatusCode/100 != 2 {
		resp.Body.Close()
		return nil, inputError(codes.Unavailable, o.url, errors.New(resp.Status))
	}
	src.Reader, src.Closer = resp.Body, resp.Body
	return src, nil
}

// inputError is a failure to read the audio input, reported with a status name as the
// gateway's own failures are: INVALID_ARGUMENT for a file, UNAVAILABLE for an HTTP stream.
func inputError(code codes.Code, label string, err error) error {
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		err = pathErr.Err // "no such file or directory", without repeating the path
	}
	return status.Errorf(code, "cannot read %s: %v", label, err)
}

// sendAudio sends the audio in chunks (at real-time pace if paced), then half-closes. It also
// half-closes, cleanly, when ctx ends (Ctrl+C), and when the audio source fails, which it then
// returns. Failures of the call itself come from Recv.
func sendAudio(ctx context.Context, stream *transcribe.Stream, src *audioSource, pace bool) error {
	defer stream.CloseSend()
	pace = pace && src.paced
	start := time.Now()
	sent := 0
	size := src.plan.ChunkBytes
	if src.live && !src.paced {
		size = 64 * 1024 // a pipe: pass on what arrives, at once
	}
	buf := make([]byte, size)
	for {
		n, err := src.read(buf)
		if ctx.Err() != nil {
			return nil // Ctrl+C, or the call is over
		}
		if n > 0 {
			if stream.Send(append([]byte(nil), buf[:n]...)) != nil {
				return nil
			}
			sent += n
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			code := codes.InvalidArgument
			if src.live {
				code = codes.Unavailable
			}
			return inputError(code, src.label, err)
		}
		wait := time.Until(start.Add(time.Duration(sent) * time.Second / time.Duration(src.plan.BytesPerSecond)))
		if pace && !sleep(ctx, wait) {
			return nil
		}
	}
}

// sleep waits for d or until ctx ends, and says whether it waited all of d.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
