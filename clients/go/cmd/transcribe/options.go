package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// options are the command-line flags, the same in every language's sample client.
type options struct {
	addr        string
	file        string
	url         string
	model       string
	language    string
	interim     bool
	smartFormat bool
	diarize     bool
	token       string
	tls         bool
	caFile      string
	fast        bool
	json        bool
	noResume    bool
	encoding    transcribev1.AudioEncoding
	sampleRate  uint
	chunkMs     uint
}

// tokenEnv is the environment variable --token defaults to.
const tokenEnv = "TRANSCRIBE_TOKEN"

// usageError is a bad command line: the program exits with code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg + " (see --help)" }

// parseOptions parses the command line; --help prints the usage to help and returns flag.ErrHelp.
func parseOptions(args []string, help io.Writer) (*options, error) {
	var o options
	var encoding string
	fs := flag.NewFlagSet("transcribe", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:50051", "gateway address, `HOST:PORT`")
	fs.StringVar(&o.file, "file", "", "audio file to stream (`PATH`), - for stdin as it arrives; a 16-bit PCM WAV is sent as raw linear16")
	fs.StringVar(&o.url, "url", "", "HTTP audio stream to relay (`URL`), e.g. an internet radio station")
	fs.StringVar(&o.model, "model", "", "model name, e.g. nova-3 (default: the upstream's default)")
	fs.StringVar(&o.language, "language", "", "BCP-47 language tag, e.g. en-US (default: en)")
	fs.BoolVar(&o.interim, "interim", false, "also print interim transcripts, prefixed by \"~ \"")
	fs.BoolVar(&o.smartFormat, "smart-format", false, "ask for smart formatting")
	fs.BoolVar(&o.diarize, "diarize", false, "ask for speaker labels")
	fs.StringVar(&o.token, "token", os.Getenv(tokenEnv), "client `TOKEN`, sent as \"authorization: Bearer TOKEN\" (default $"+tokenEnv+")")
	fs.BoolVar(&o.tls, "tls", false, "connect with TLS, trusting the system's root certificates")
	fs.StringVar(&o.caFile, "ca-file", "", "with TLS, trust the PEM certificates in `PATH` instead")
	fs.BoolVar(&o.fast, "fast", false, "send audio as fast as possible instead of at real-time pace")
	fs.BoolVar(&o.json, "json", false, "print every response as one JSON object per line")
	fs.BoolVar(&o.noResume, "no-resume", false, "end with the error instead of resuming after UNAVAILABLE with a ResumePoint")
	fs.StringVar(&encoding, "encoding", "", "raw audio `ENCODING` of the input, e.g. linear16, mulaw (default: WAV header or containerised)")
	fs.UintVar(&o.sampleRate, "sample-rate", 0, "sample rate of raw audio, in `HZ`")
	fs.UintVar(&o.chunkMs, "chunk-ms", 50, "audio per message, in `MS`")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, help)
			return nil, err
		}
		return nil, usageError{err.Error()}
	}
	switch {
	case fs.NArg() > 0:
		return nil, usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	case (o.file == "") == (o.url == ""):
		return nil, usageError{"exactly one of --file and --url is required"}
	case o.chunkMs == 0:
		return nil, usageError{"--chunk-ms must be positive"}
	}
	if encoding != "" {
		enc, err := parseEncoding(encoding)
		if err != nil {
			return nil, err
		}
		o.encoding = enc
	}
	return &o, nil
}

// parseEncoding maps a Deepgram encoding name (linear16, amr-nb, ogg-opus...) to the enum.
func parseEncoding(name string) (transcribev1.AudioEncoding, error) {
	key := "AUDIO_ENCODING_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
	value, ok := transcribev1.AudioEncoding_value[key]
	if !ok || value == int32(transcribev1.AudioEncoding_AUDIO_ENCODING_UNSPECIFIED) {
		return 0, usageError{fmt.Sprintf("unknown --encoding %q", name)}
	}
	return transcribev1.AudioEncoding(value), nil
}

func printUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintln(w, "usage: transcribe (--file PATH | --url URL) [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Streams audio to the transcription gateway and prints the final transcripts.")
	fmt.Fprintln(w)
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if arg != "" {
			arg = " " + arg
		}
		fmt.Fprintf(w, "  --%s%s\n        %s", f.Name, arg, usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" && f.Name != "token" {
			fmt.Fprintf(w, " (default %s)", f.DefValue)
		}
		fmt.Fprintln(w)
	})
}
