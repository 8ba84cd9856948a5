package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// assumedByteRate paces containerised files whose byte rate is unknown: 128 kbit/s, typical of
// MP3. Use --fast to send such files as fast as possible instead.
const assumedByteRate = 16000

// audioSource is the audio to send and what the config must say about it.
type audioSource struct {
	io.Reader
	io.Closer
	encoding   transcribev1.AudioEncoding
	sampleRate uint32
	channels   uint32
	byteRate   int  // bytes per second of audio, for pacing and chunk sizes
	frameBytes int  // chunks are a whole number of these
	chunkBytes int  // --chunk-ms of audio
	paced      bool // sent at real-time pace unless --fast (when the byte rate is known)
	live       bool // an HTTP stream, not a file
	label      string
}

// read fills buf from a file, or returns what has arrived from a live stream.
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

// openAudio opens --file or --url and decides what to send, as every language's client does.
//
// A file that is a 16-bit PCM WAV file is sent as raw linear16 (its data chunk only) with the
// header's sample rate and channels; any other WAV file is sent whole as containerised audio,
// paced at its header's byte rate; other files are sent whole as containerised audio, paced at
// assumedByteRate. An explicit --encoding sends the WAV data chunk (or the whole non-WAV file)
// with that encoding. --sample-rate always overrides the header. An HTTP stream is relayed as
// it arrives, paced only when its byte rate follows from --encoding and --sample-rate.
func openAudio(ctx context.Context, o *options) (*audioSource, error) {
	src := &audioSource{encoding: o.encoding, sampleRate: uint32(o.sampleRate), frameBytes: 1}
	var err error
	if o.url != "" {
		err = src.openURL(ctx, o.url)
	} else {
		err = src.openFile(o.file)
	}
	if err != nil {
		return nil, err
	}
	rate := src.byteRate
	if rate == 0 {
		rate = assumedByteRate
	}
	src.chunkBytes = max(rate*int(o.chunkMs)/1000/src.frameBytes, 1) * src.frameBytes
	return src, nil
}

func (s *audioSource) openURL(ctx context.Context, url string) error {
	s.byteRate = rawByteRate(s.encoding, s.sampleRate, 1)
	s.paced, s.live, s.label = s.byteRate > 0, true, url
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return inputError(codes.InvalidArgument, url, err)
	}
	req.Header.Set("User-Agent", "transcribe-client")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return inputError(codes.Unavailable, url, err)
	}
	if resp.StatusCode/100 != 2 {
		resp.Body.Close()
		return inputError(codes.Unavailable, url, errors.New(resp.Status))
	}
	s.Reader, s.Closer = resp.Body, resp.Body
	return nil
}

func (s *audioSource) openFile(path string) error {
	s.label = path
	f, err := os.Open(path)
	if err != nil {
		return inputError(codes.InvalidArgument, path, err)
	}
	s.Reader, s.Closer, s.paced = f, f, true
	br := bufio.NewReader(f)
	format, dataBytes, err := readWAVHeader(br)
	isWAV := err == nil
	if s.encoding == transcribev1.AudioEncoding_AUDIO_ENCODING_UNSPECIFIED && isWAV && format.isPCM16() {
		s.encoding = transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR16
	}
	if s.encoding != transcribev1.AudioEncoding_AUDIO_ENCODING_UNSPECIFIED && isWAV {
		s.Reader = br // just after the header: the samples
		if dataBytes > 0 {
			s.Reader = io.LimitReader(br, dataBytes)
		}
		if s.sampleRate == 0 {
			s.sampleRate = format.sampleRate
		}
		s.channels = uint32(format.channels)
	} else if _, err := f.Seek(0, io.SeekStart); err != nil { // the whole file
		f.Close()
		return inputError(codes.InvalidArgument, path, err)
	}
	s.byteRate = rawByteRate(s.encoding, s.sampleRate, s.channels)
	if s.byteRate > 0 {
		s.frameBytes = rawByteRate(s.encoding, 1, s.channels)
	} else if isWAV {
		s.byteRate = int(format.byteRate)
	}
	if s.byteRate == 0 {
		s.byteRate = assumedByteRate
	}
	return nil
}

// rawByteRate is the byte rate of raw audio (channels 0 counts as 1), or 0 when it is not fixed.
func rawByteRate(enc transcribev1.AudioEncoding, sampleRate, channels uint32) int {
	perSample := 0
	switch enc {
	case transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR16:
		perSample = 2
	case transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR32:
		perSample = 4
	case transcribev1.AudioEncoding_AUDIO_ENCODING_MULAW, transcribev1.AudioEncoding_AUDIO_ENCODING_ALAW:
		perSample = 1
	}
	return perSample * int(sampleRate) * int(max(channels, 1))
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

type transcribeStream = grpc.BidiStreamingClient[transcribev1.StreamTranscribeRequest, transcribev1.StreamTranscribeResponse]

// sendAudio sends the config, then the audio in chunks (at real-time pace if paced), then
// half-closes. It also half-closes, cleanly, when ctx ends (Ctrl+C), and when the audio source
// fails, which it then returns. Failures of the call itself come from Recv.
func sendAudio(ctx context.Context, stream transcribeStream, cfg *transcribev1.StreamingConfig, src *audioSource, pace bool) error {
	send := func(req *transcribev1.StreamTranscribeRequest) bool {
		return stream.Send(req) == nil // on failure Recv reports the call's status
	}
	if !send(&transcribev1.StreamTranscribeRequest{Request: &transcribev1.StreamTranscribeRequest_Config{Config: cfg}}) {
		return nil
	}
	pace = pace && src.paced
	start := time.Now()
	sent := 0
	buf := make([]byte, src.chunkBytes)
	for {
		n, err := src.read(buf)
		if ctx.Err() != nil {
			break // Ctrl+C, or the call is over
		}
		if n > 0 {
			chunk := make([]byte, n)
			copy(chunk, buf[:n])
			if !send(&transcribev1.StreamTranscribeRequest{Request: &transcribev1.StreamTranscribeRequest_Audio{Audio: chunk}}) {
				return nil
			}
			sent += n
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			code := codes.InvalidArgument
			if src.live {
				code = codes.Unavailable
			}
			_ = stream.CloseSend() // the results of the audio sent so far still come
			return inputError(code, src.label, err)
		}
		if pace && !sleep(ctx, time.Until(start.Add(time.Duration(sent)*time.Second/time.Duration(src.byteRate)))) {
			break
		}
	}
	_ = stream.CloseSend() // a failure here also shows up in Recv
	return nil
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
