// Command transcribe streams an audio file or an HTTP audio stream to the transcription gateway
// and prints the transcripts it sends back.
//
//	go run ./cmd/transcribe --addr 127.0.0.1:50051 --file speech.wav
//
// It opens one TranscribeService/StreamTranscribe stream, sends the config, then the audio at
// real-time pace (unless --fast), then half-closes and prints every remaining result. Ctrl+C
// ends the audio early in the same clean way; a second Ctrl+C cancels the call (exit code 130).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"unicode"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// errInterrupted ends the call on a second Ctrl+C.
var errInterrupted = status.Error(codes.Canceled, "interrupted")

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout)
	var usage usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.As(err, &usage):
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(2)
	case errors.Is(err, errInterrupted):
		fmt.Fprintf(os.Stderr, "error: %s\n", describe(err))
		os.Exit(130)
	default:
		fmt.Fprintf(os.Stderr, "error: %s\n", describe(err))
		os.Exit(1)
	}
}

// run is the whole program: parse the flags, open the audio, stream it and print the results.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	opts, err := parseOptions(args, stdout)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The first Ctrl+C ends the audio (not the call); a second one cancels the call.
	audioCtx, endAudio := context.WithCancel(ctx)
	defer endAudio()
	interrupts := make(chan os.Signal, 2)
	signal.Notify(interrupts, os.Interrupt)
	defer signal.Stop(interrupts)
	go func() {
		for _, onInterrupt := range []func(){endAudio, func() { cancel(errInterrupted) }} {
			select {
			case <-interrupts:
				onInterrupt()
			case <-ctx.Done():
				return
			}
		}
	}()

	src, err := openAudio(audioCtx, opts)
	if err != nil {
		switch {
		case errors.Is(context.Cause(ctx), errInterrupted):
			return errInterrupted
		case audioCtx.Err() != nil:
			return nil // Ctrl+C before any audio: nothing to transcribe
		}
		return err
	}
	defer src.Close()

	creds, err := transportCredentials(opts)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(opts.addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()

	if opts.token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+opts.token)
	}
	stream, err := transcribev1.NewTranscribeServiceClient(conn).StreamTranscribe(ctx)
	if err != nil {
		return err
	}

	// The sender's result: nil, or a failure of the audio source after which it half-closed.
	sent := make(chan error, 1)
	go func() { sent <- sendAudio(audioCtx, stream, newConfig(opts, src), src, !opts.fast) }()

	out := printer{w: stdout, json: opts.json, interim: opts.interim}
	for {
		resp, err := stream.Recv()
		if err != nil {
			interrupted := errors.Is(context.Cause(ctx), errInterrupted)
			cancel(nil) // stops the sender if the call ended before the audio did
			inputErr := <-sent
			switch {
			case interrupted:
				return errInterrupted
			case errors.Is(err, io.EOF):
				return inputErr // reported after the results of the audio sent before it failed
			default:
				return err
			}
		}
		if err := out.print(resp); err != nil {
			return err
		}
	}
}

// newConfig builds the session's config from the flags and what the audio source found out.
func newConfig(opts *options, src *audioSource) *transcribev1.StreamingConfig {
	cfg := &transcribev1.StreamingConfig{
		Model:      opts.model,
		Language:   opts.language,
		Encoding:   src.encoding,
		SampleRate: src.sampleRate,
	}
	if src.channels > 1 {
		cfg.Channels = src.channels
	}
	if opts.interim {
		cfg.InterimResults = proto.Bool(true)
	}
	if opts.smartFormat {
		cfg.SmartFormat = proto.Bool(true)
	}
	if opts.diarize {
		cfg.Diarize = proto.Bool(true)
	}
	return cfg
}

// describe renders an error as the program prints it after "error: ".
func describe(err error) string {
	if st, ok := status.FromError(err); ok {
		return statusName(st.Code()) + ": " + st.Message()
	}
	return err.Error()
}

// statusName gives a status code's canonical name, e.g. INVALID_ARGUMENT for InvalidArgument.
func statusName(code codes.Code) string {
	if code == codes.Canceled {
		return "CANCELLED" // the one name Go spells differently
	}
	name := code.String()
	var b strings.Builder
	prev := rune(0)
	for _, r := range name {
		if unicode.IsUpper(r) && unicode.IsLower(prev) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
		prev = r
	}
	return b.String()
}
