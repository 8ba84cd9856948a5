package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// fakeGateway answers StreamTranscribe as the gateway does, in a scripted way: it rejects sample
// rates over 192000 with INVALID_ARGUMENT, and otherwise sends one interim and one final result
// saying how many audio bytes it received, then a summary.
type fakeGateway struct {
	transcribev1.UnimplementedTranscribeServiceServer

	mu     sync.Mutex
	config *transcribev1.StreamingConfig
	audio  []byte
	auth   []string
}

func (g *fakeGateway) StreamTranscribe(stream grpc.BidiStreamingServer[transcribev1.StreamTranscribeRequest, transcribev1.StreamTranscribeResponse]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	cfg := first.GetConfig()
	if cfg == nil {
		return status.Error(codes.InvalidArgument, "the first request must carry config")
	}
	if cfg.GetSampleRate() > 192000 {
		return status.Errorf(codes.InvalidArgument, "sample_rate %d is out of range (1 to 192000)", cfg.GetSampleRate())
	}
	g.mu.Lock()
	g.config, g.auth = cfg, md.Get("authorization")
	g.mu.Unlock()
	if err := stream.Send(&transcribev1.StreamTranscribeResponse{Response: &transcribev1.StreamTranscribeResponse_SessionStarted{
		SessionStarted: &transcribev1.SessionStarted{SessionId: "s1", Config: cfg},
	}}); err != nil {
		return err
	}
	var audio []byte
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		audio = append(audio, req.GetAudio()...)
	}
	g.mu.Lock()
	g.audio = audio
	g.mu.Unlock()
	result := func(final bool, text string) *transcribev1.StreamTranscribeResponse {
		return &transcribev1.StreamTranscribeResponse{Response: &transcribev1.StreamTranscribeResponse_Result{Result: &transcribev1.Result{
			ChannelCount: 1, IsFinal: final, DurationSeconds: 1.5,
			Alternatives: []*transcribev1.Alternative{{Transcript: text}},
		}}}
	}
	for _, resp := range []*transcribev1.StreamTranscribeResponse{
		result(false, "partial words"),
		result(true, ""), // silence: not printed
		result(true, fmt.Sprintf("got %d bytes", len(audio))),
		{Response: &transcribev1.StreamTranscribeResponse_Summary{Summary: &transcribev1.SessionSummary{AudioReceivedSeconds: 0.5}}},
	} {
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

func startFakeGateway(t *testing.T, opts ...grpc.ServerOption) (*fakeGateway, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gw := &fakeGateway{}
	srv := grpc.NewServer(opts...)
	transcribev1.RegisterTranscribeServiceServer(srv, gw)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return gw, lis.Addr().String()
}

// wavBytes builds a WAV file: a fmt chunk (PCM or extensible), an odd-sized LIST chunk, the data.
func wavBytes(format uint16, channels uint16, rate uint32, bits uint16, data []byte) []byte {
	le := binary.LittleEndian
	block := channels * bits / 8
	var fmtChunk []byte
	fmtChunk = le.AppendUint16(fmtChunk, format)
	fmtChunk = le.AppendUint16(fmtChunk, channels)
	fmtChunk = le.AppendUint32(fmtChunk, rate)
	fmtChunk = le.AppendUint32(fmtChunk, rate*uint32(block))
	fmtChunk = le.AppendUint16(fmtChunk, block)
	fmtChunk = le.AppendUint16(fmtChunk, bits)
	if format == wavFormatExtensible {
		fmtChunk = le.AppendUint16(fmtChunk, 22)
		fmtChunk = le.AppendUint16(fmtChunk, bits)
		fmtChunk = le.AppendUint32(fmtChunk, 0)
		fmtChunk = le.AppendUint16(fmtChunk, wavFormatPCM)
		fmtChunk = append(fmtChunk, make([]byte, 14)...)
	}
	chunk := func(id string, body []byte) []byte {
		out := append([]byte(id), le.AppendUint32(nil, uint32(len(body)))...)
		out = append(out, body...)
		if len(body)%2 == 1 {
			out = append(out, 0)
		}
		return out
	}
	body := []byte("WAVE")
	body = append(body, chunk("fmt ", fmtChunk)...)
	body = append(body, chunk("LIST", []byte("odd"))...)
	body = append(body, chunk("data", data)...)
	return append(append([]byte("RIFF"), le.AppendUint32(nil, uint32(len(body)))...), body...)
}

func writeFile(t *testing.T, name string, content []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStatusNameIsTheCanonicalUpperSnakeName(t *testing.T) {
	want := []string{
		"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
		"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
		"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
		"UNAUTHENTICATED",
	}
	for code, name := range want {
		if got := statusName(codes.Code(code)); got != name {
			t.Errorf("statusName(%d) = %q, want %q", code, got, name)
		}
	}
}

func TestParseEncodingTakesDeepgramNames(t *testing.T) {
	for name, want := range map[string]transcribev1.AudioEncoding{
		"linear16": transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR16,
		"mulaw":    transcribev1.AudioEncoding_AUDIO_ENCODING_MULAW,
		"amr-nb":   transcribev1.AudioEncoding_AUDIO_ENCODING_AMR_NB,
		"ogg-opus": transcribev1.AudioEncoding_AUDIO_ENCODING_OGG_OPUS,
		"G729":     transcribev1.AudioEncoding_AUDIO_ENCODING_G729,
	} {
		if got, err := parseEncoding(name); err != nil || got != want {
			t.Errorf("parseEncoding(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	for _, name := range []string{"", "unspecified", "mp3", "linear 16"} {
		if _, err := parseEncoding(name); err == nil {
			t.Errorf("parseEncoding(%q) succeeded", name)
		}
	}
}

func TestParseOptionsRejectsBadCommandLines(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"--file", "a.wav", "--url", "http://127.0.0.1/x"},
		{"--file", "a.wav", "extra"},
		{"--file", "a.wav", "--chunk-ms", "0"},
		{"--file", "a.wav", "--encoding", "mp3"},
		{"--file", "a.wav", "--no-such-flag"},
	} {
		var usage usageError
		if _, err := parseOptions(args, io.Discard); !errors.As(err, &usage) {
			t.Errorf("parseOptions(%q) = %v, want a usage error", args, err)
		}
	}
	var help bytes.Buffer
	if _, err := parseOptions([]string{"--help"}, &help); !errors.Is(err, flag.ErrHelp) || !strings.Contains(help.String(), "--chunk-ms MS") {
		t.Errorf("--help gave %v and %q", err, help.String())
	}
}

func TestParseOptionsDefaults(t *testing.T) {
	o, err := parseOptions([]string{"--file", "a.wav"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.addr != "127.0.0.1:50051" || o.chunkMs != 50 || o.fast || o.json || o.encoding != 0 {
		t.Errorf("unexpected defaults %+v", o)
	}
}

func TestReadWAVHeaderFindsTheSamples(t *testing.T) {
	data := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	for _, format := range []uint16{wavFormatPCM, wavFormatExtensible} {
		r := bytes.NewReader(wavBytes(format, 2, 22050, 16, data))
		f, n, err := readWAVHeader(r)
		if err != nil {
			t.Fatal(err)
		}
		rest, _ := io.ReadAll(r)
		if !f.isPCM16() || f.channels != 2 || f.sampleRate != 22050 || f.blockAlign != 4 || n != 8 || !bytes.Equal(rest, data) {
			t.Errorf("format %#x: got %+v, %d bytes, rest %v", format, f, n, rest)
		}
	}
	if _, _, err := readWAVHeader(strings.NewReader("ID3 not a wave file")); !errors.Is(err, errNotWAV) {
		t.Errorf("an MP3 gave %v", err)
	}
	if f, _, err := readWAVHeader(bytes.NewReader(wavBytes(3, 1, 16000, 32, data))); err != nil || f.isPCM16() {
		t.Errorf("a float WAV gave %+v, %v", f, err)
	}
	if _, _, err := readWAVHeader(bytes.NewReader(wavBytes(1, 1, 16000, 16, nil)[:30])); err == nil || errors.Is(err, errNotWAV) {
		t.Errorf("a truncated WAV gave %v", err)
	}
}

func TestJSONLineUsesTheCanonicalMappingOnOneLine(t *testing.T) {
	resp := &transcribev1.StreamTranscribeResponse{Response: &transcribev1.StreamTranscribeResponse_Result{Result: &transcribev1.Result{
		IsFinal: true, SpeechFinal: true, StartSeconds: 1.25,
		Alternatives: []*transcribev1.Alternative{{Transcript: "hello", Words: []*transcribev1.Word{{Word: "hello", Speaker: proto.Uint32(0)}}}},
	}}}
	line, err := jsonLine(resp)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
		t.Fatalf("not one line: %q", line)
	}
	var got map[string]map[string]any
	if err := json.Unmarshal(line, &got); err != nil {
		t.Fatal(err)
	}
	result := got["result"]
	if result["isFinal"] != true || result["speechFinal"] != true || result["startSeconds"] != 1.25 {
		t.Errorf("unexpected JSON %s", line)
	}
	if _, ok := result["channelIndex"]; ok {
		t.Errorf("unset fields should be left out: %s", line)
	}
	if !strings.Contains(string(line), `"speaker":0`) {
		t.Errorf("a set optional field should be kept: %s", line)
	}
}

func TestRunStreamsAWAVFileAsLinear16(t *testing.T) {
	gw, addr := startFakeGateway(t)
	pcm := bytes.Repeat([]byte{1, 0, 2, 0}, 4000) // 0.5 s of 16 kHz stereo
	path := writeFile(t, "clip.wav", wavBytes(wavFormatPCM, 2, 16000, 16, pcm))
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"--addr", addr, "--file", path, "--interim", "--token", "sekrit", "--model", "m1", "--smart-format"}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	if want := "~ partial words\ngot 16000 bytes\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
	gw.mu.Lock()
	defer gw.mu.Unlock()
	cfg := gw.config
	if cfg.GetEncoding() != transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR16 || cfg.GetSampleRate() != 16000 || cfg.GetChannels() != 2 ||
		cfg.GetModel() != "m1" || !cfg.GetInterimResults() || !cfg.GetSmartFormat() || cfg.Diarize != nil {
		t.Errorf("unexpected config %v", cfg)
	}
	if !bytes.Equal(gw.audio, pcm) {
		t.Errorf("the gateway got %d bytes, want the %d samples bytes", len(gw.audio), len(pcm))
	}
	if len(gw.auth) != 1 || gw.auth[0] != "Bearer sekrit" {
		t.Errorf("authorization metadata %q", gw.auth)
	}
}

func TestRunSendsOtherFilesAsTheyAre(t *testing.T) {
	gw, addr := startFakeGateway(t)
	content := []byte("ID3 some mp3 bytes")
	path := writeFile(t, "clip.mp3", content)
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--addr", addr, "--file", path, "--fast"}, &stdout); err != nil {
		t.Fatal(err)
	}
	gw.mu.Lock()
	defer gw.mu.Unlock()
	if gw.config.GetEncoding() != 0 || gw.config.GetSampleRate() != 0 || gw.config.InterimResults != nil || !bytes.Equal(gw.audio, content) {
		t.Errorf("config %v, audio %q", gw.config, gw.audio)
	}
	if stdout.String() != fmt.Sprintf("got %d bytes\n", len(content)) {
		t.Errorf("stdout %q", stdout.String())
	}
}

func TestRunRelaysAnHTTPStream(t *testing.T) {
	gw, addr := startFakeGateway(t)
	content := bytes.Repeat([]byte("OggS stream "), 1000)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for part := range slices.Chunk(content, 700) {
			_, _ = w.Write(part)
			w.(http.Flusher).Flush()
		}
	}))
	defer web.Close()
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--addr", addr, "--url", web.URL + "/radio", "--json"}, &stdout); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], `{"sessionStarted":`) || !strings.HasPrefix(lines[4], `{"summary":`) {
		t.Errorf("unexpected JSON lines %q", lines)
	}
	gw.mu.Lock()
	defer gw.mu.Unlock()
	if !bytes.Equal(gw.audio, content) {
		t.Errorf("the gateway got %d bytes, want %d", len(gw.audio), len(content))
	}
}

func TestRunReportsTheCallsStatus(t *testing.T) {
	_, addr := startFakeGateway(t)
	path := writeFile(t, "clip.wav", wavBytes(wavFormatPCM, 1, 16000, 16, make([]byte, 3200)))
	err := run(context.Background(), []string{"--addr", addr, "--file", path, "--encoding", "linear16", "--sample-rate", "500000"}, io.Discard)
	if got := describe(err); !strings.HasPrefix(got, "INVALID_ARGUMENT: sample_rate 500000") {
		t.Errorf("describe(%v) = %q", err, got)
	}
}

func TestRunReportsAnUnreachableGateway(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	path := writeFile(t, "clip.wav", wavBytes(wavFormatPCM, 1, 16000, 16, make([]byte, 3200)))
	err = run(context.Background(), []string{"--addr", addr, "--file", path}, io.Discard)
	if got := describe(err); !strings.HasPrefix(got, "UNAVAILABLE: ") {
		t.Errorf("describe(%v) = %q", err, got)
	}
}

// selfSignedCert makes a certificate for 127.0.0.1 and returns it with its PEM encoding.
func selfSignedCert(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "fake gateway"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestRunConnectsWithTLS(t *testing.T) {
	cert, caPEM := selfSignedCert(t)
	_, addr := startFakeGateway(t, grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	path := writeFile(t, "clip.wav", wavBytes(wavFormatPCM, 1, 16000, 16, make([]byte, 3200)))
	caFile := writeFile(t, "ca.pem", caPEM)
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"--addr", addr, "--file", path, "--fast", "--ca-file", caFile}, &stdout); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "got 3200 bytes\n" {
		t.Errorf("stdout %q", stdout.String())
	}
	// The system's roots do not trust the fake gateway's certificate.
	err := run(context.Background(), []string{"--addr", addr, "--file", path, "--fast", "--tls"}, io.Discard)
	if got := describe(err); !strings.HasPrefix(got, "UNAVAILABLE: ") {
		t.Errorf("describe(%v) = %q", err, got)
	}
}

func TestRunReportsUnreadableInputs(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.wav")
	err := run(context.Background(), []string{"--file", missing}, io.Discard)
	if want := "INVALID_ARGUMENT: cannot read " + missing + ": no such file or directory"; describe(err) != want {
		t.Errorf("got %q, want %q", describe(err), want)
	}
	web := httptest.NewServer(http.NotFoundHandler())
	defer web.Close()
	err = run(context.Background(), []string{"--url", web.URL + "/gone"}, io.Discard)
	if want := "UNAVAILABLE: cannot read " + web.URL + "/gone: 404 Not Found"; describe(err) != want {
		t.Errorf("got %q, want %q", describe(err), want)
	}
}

func TestRunReportsAnHTTPStreamThatBreaksAfterTheResults(t *testing.T) {
	gw, addr := startFakeGateway(t)
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", "100000")
		_, _ = w.Write(make([]byte, 3000)) // then the connection drops
	}))
	defer web.Close()
	var stdout bytes.Buffer
	err := run(context.Background(), []string{"--addr", addr, "--url", web.URL}, &stdout)
	if got := describe(err); !strings.HasPrefix(got, "UNAVAILABLE: cannot read "+web.URL+": unexpected EOF") {
		t.Errorf("describe(%v) = %q", err, got)
	}
	if stdout.String() != "got 3000 bytes\n" {
		t.Errorf("stdout %q", stdout.String())
	}
	gw.mu.Lock()
	defer gw.mu.Unlock()
	if len(gw.audio) != 3000 {
		t.Errorf("the gateway got %d bytes", len(gw.audio))
	}
}

func TestOpenAudioDecidesWhatToSend(t *testing.T) {
	pcm := make([]byte, 6400)
	mono := writeFile(t, "mono.wav", wavBytes(wavFormatPCM, 1, 8000, 16, pcm))
	float := writeFile(t, "float.wav", wavBytes(3, 1, 8000, 32, pcm))
	mp3 := writeFile(t, "clip.mp3", []byte("ID3 not a wave file"))
	linear16, mulaw := transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR16, transcribev1.AudioEncoding_AUDIO_ENCODING_MULAW
	for _, tc := range []struct {
		args       []string
		encoding   transcribev1.AudioEncoding
		sampleRate uint32
		byteRate   int
		chunkBytes int
		sendBytes  int
	}{
		{[]string{"--file", mono}, linear16, 8000, 16000, 800, len(pcm)},
		{[]string{"--file", mono, "--sample-rate", "16000", "--chunk-ms", "20"}, linear16, 16000, 32000, 640, len(pcm)},
		{[]string{"--file", mono, "--encoding", "mulaw"}, mulaw, 8000, 8000, 400, len(pcm)},
		{[]string{"--file", float}, 0, 0, 32000, 1600, len(pcm) + 56}, // the whole file
		{[]string{"--file", mp3}, 0, 0, assumedByteRate, 800, 19},
		{[]string{"--file", mp3, "--encoding", "linear16", "--sample-rate", "500000"}, linear16, 500000, 1000000, 50000, 19},
	} {
		o, err := parseOptions(tc.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		src, err := openAudio(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		sent, _ := io.ReadAll(src)
		src.Close()
		if src.encoding != tc.encoding || src.sampleRate != tc.sampleRate || src.byteRate != tc.byteRate ||
			src.chunkBytes != tc.chunkBytes || len(sent) != tc.sendBytes || !src.paced {
			t.Errorf("%q: got %+v and %d bytes", tc.args, src, len(sent))
		}
	}
}
