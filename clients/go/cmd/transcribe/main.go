// Command transcribe streams an audio file, stdin or an HTTP audio stream to the transcription
// gateway and prints the transcripts it sends back. It is a thin program on top of the
// transcribe package (../../transcribe), which also resumes the stream by itself when a
// gateway replica drains.
//
//	go run ./cmd/transcribe --addr 127.0.0.1:50051 --file speech.wav
//
// Ctrl+C ends the audio (the remaining results still print, exit 0); a second Ctrl+C cancels
// the call (exit code 130).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
	"github.com/transcribe-gateway/clients/go/transcribe"
)

// errInterrupted ends the call on a second Ctrl+C.
var errInterrupted = status.Error(codes.Canceled, "interrupted")

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
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
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
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

	client, err := transcribe.NewClient(opts.addr, transcribe.Options{
		Token: opts.token, TLS: opts.tls, CAFile: opts.caFile,
		Resume: transcribe.ResumeOptions{Disabled: opts.noResume, OnResume: func(e transcribe.ResumeEvent) {
			fmt.Fprintf(stderr, "resuming: %v (attempt %d, from %.3f s, %d bytes resent)\n",
				e.Err, e.Attempt, e.StartOffsetSeconds, e.ResendBytes)
		}},
	})
	if err != nil {
		return err
	}
	defer client.Close()
	stream, err := client.Stream(ctx, newConfig(opts, src.plan))
	if err != nil {
		return err
	}

	// The sender's result: nil, or a failure of the audio source after which it half-closed.
	sent := make(chan error, 1)
	go func() { sent <- sendAudio(audioCtx, stream, src, !opts.fast) }()

	out := printer{w: stdout, json: opts.json, interim: opts.interim}
	for {
		resp, err := stream.Recv()
		if err != nil {
			interrupted := errors.Is(context.Cause(ctx), errInterrupted)
			endAudio() // stops the sender if the call ended before the audio did
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

// newConfig builds the session's config from the flags and the audio plan.
func newConfig(opts *options, plan transcribe.AudioPlan) *transcribev1.StreamingConfig {
	cfg := &transcribev1.StreamingConfig{
		Model:      opts.model,
		Language:   opts.language,
		Encoding:   plan.Encoding,
		SampleRate: plan.SampleRate,
	}
	if plan.Channels > 1 {
		cfg.Channels = plan.Channels
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
	var e *transcribe.Error
	if errors.As(err, &e) {
		return e.Error()
	}
	if st, ok := status.FromError(err); ok {
		return transcribe.StatusName(st.Code()) + ": " + st.Message()
	}
	return err.Error()
}
