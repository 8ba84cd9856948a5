package transcribe

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// The shared test vectors of every client language: ../../testdata (see its README.md).
var testdata = filepath.Join("..", "..", "testdata")

func load(t *testing.T, name string, into any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, into); err != nil {
		t.Fatal(err)
	}
}

func TestSendPlansFollowTheVectors(t *testing.T) {
	var v struct {
		ChunkMs int `json:"chunk_ms"`
		Plans   []struct {
			File           string `json:"file"`
			Encoding       string `json:"encoding"`
			SampleRate     uint32 `json:"sample_rate"`
			Channels       uint32 `json:"channels"`
			PayloadOffset  int    `json:"payload_offset"`
			PayloadBytes   int    `json:"payload_bytes"`
			FrameBytes     int    `json:"frame_bytes"`
			BytesPerSecond int    `json:"bytes_per_second"`
			ChunkBytes     int    `json:"chunk_bytes"`
			Resumable      bool   `json:"resumable"`
		} `json:"plans"`
	}
	load(t, "wav/plans.json", &v)
	for _, c := range v.Plans {
		t.Run(c.File, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(testdata, "wav", c.File))
			if err != nil {
				t.Fatal(err)
			}
			want := data[c.PayloadOffset : c.PayloadOffset+c.PayloadBytes]
			// Whole, and as a pipe delivers it: the plan must not need more than the header.
			for _, cut := range []int{len(data), 1, 13, 40, 60} {
				var p AudioPlan
				ok := false
				for n := min(cut, len(data)); !ok; n = min(n+1, len(data)) {
					p, ok = PlanAudio(data[:n], 0, 0, v.ChunkMs, n == len(data))
				}
				channels := p.Channels
				if !p.Raw() {
					channels = 0
				}
				if p.Encoding.String() != c.Encoding || p.SampleRate != c.SampleRate || channels != c.Channels ||
					p.FrameBytes != c.FrameBytes || p.BytesPerSecond != c.BytesPerSecond || p.ChunkBytes != c.ChunkBytes ||
					p.Raw() != c.Resumable {
					t.Fatalf("cut %d: plan %+v, want %+v", cut, p, c)
				}
				end := int64(len(data))
				if p.PayloadBytes >= 0 {
					end = min(end, int64(p.PayloadOffset)+p.PayloadBytes)
				}
				if !bytes.Equal(data[p.PayloadOffset:end], want) {
					t.Fatalf("cut %d: payload [%d:%d], want [%d:+%d]", cut, p.PayloadOffset, end, c.PayloadOffset, c.PayloadBytes)
				}
			}
		})
	}
}

func readLines(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(testdata, "responses", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	scanner := bufio.NewScanner(f)
	scanner.Buffer(nil, 1<<20)
	for scanner.Scan() {
		lines = append(lines, scanner.Text())
	}
	return lines
}

func TestTheRecordedStreamPrintsTheExpectedOutput(t *testing.T) {
	var text, interim, jsonOut bytes.Buffer
	for _, line := range readLines(t, "recorded.jsonl") {
		resp := &transcribev1.StreamTranscribeResponse{}
		if err := protojson.Unmarshal([]byte(line), resp); err != nil {
			t.Fatal(err)
		}
		if l, ok := TextLine(resp, false); ok {
			text.WriteString(l + "\n")
		}
		if l, ok := TextLine(resp, true); ok {
			interim.WriteString(l + "\n")
		}
		j, err := JSONLine(resp)
		if err != nil {
			t.Fatal(err)
		}
		jsonOut.Write(j)
	}
	for name, got := range map[string]string{"expected.txt": text.String(), "expected-interim.txt": interim.String(), "expected.jsonl": jsonOut.String()} {
		want, err := os.ReadFile(filepath.Join(testdata, "responses", name))
		if err != nil {
			t.Fatal(err)
		}
		if got != string(want) {
			t.Errorf("%s:\n got %q\nwant %q", name, got, want)
		}
	}
}

func TestErrorStatusesAreReadAsTheVectorsSay(t *testing.T) {
	var v struct {
		Errors []struct {
			Code        string          `json:"code"`
			Message     string          `json:"message"`
			Reason      string          `json:"reason"`
			ResumePoint json.RawMessage `json:"resume_point"`
			Details     string          `json:"status_details_bin"`
			Stderr      string          `json:"stderr"`
		} `json:"errors"`
	}
	load(t, "errors.json", &v)
	for _, c := range v.Errors {
		raw, err := base64.StdEncoding.DecodeString(c.Details)
		if err != nil {
			t.Fatal(err)
		}
		st := &spb.Status{}
		if err := proto.Unmarshal(raw, st); err != nil {
			t.Fatal(err)
		}
		e := FromStatus(status.FromProto(st))
		if StatusName(e.Code) != c.Code || e.Reason != c.Reason || "error: "+e.Error()+"\n" != c.Stderr {
			t.Errorf("%s: got %v (reason %q)", c.Reason, e, e.Reason)
		}
		if string(c.ResumePoint) == "null" {
			if e.ResumePoint != nil {
				t.Errorf("%s: unexpected resume point %v", c.Reason, e.ResumePoint)
			}
			continue
		}
		want := &transcribev1.ResumePoint{}
		if err := protojson.Unmarshal(c.ResumePoint, want); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(e.ResumePoint, want) {
			t.Errorf("%s: resume point %v, want %v", c.Reason, e.ResumePoint, want)
		}
	}
}

func TestResumeAndCommitFollowTheVectors(t *testing.T) {
	var v struct {
		Resume []struct {
			Name        string          `json:"name"`
			Encoding    string          `json:"encoding"`
			SampleRate  uint32          `json:"sample_rate"`
			Channels    uint32          `json:"channels"`
			StreamStart int64           `json:"stream_start_byte"`
			KeptFrom    int64           `json:"kept_from_byte"`
			SentBytes   int64           `json:"sent_bytes"`
			Point       json.RawMessage `json:"resume_point"`
			Expected    struct {
				Resumable   bool    `json:"resumable"`
				StartOffset float64 `json:"start_offset_seconds"`
				ResendFrom  int64   `json:"resend_from_byte"`
				ResendBytes int64   `json:"resend_bytes"`
			} `json:"expected"`
		} `json:"resume"`
		Commit []struct {
			Name        string  `json:"name"`
			SampleRate  int     `json:"sample_rate"`
			Channels    int     `json:"channels"`
			StreamStart int64   `json:"stream_start_byte"`
			Offset      float64 `json:"stream_start_offset_seconds"`
			Committed   float64 `json:"committed_seconds"`
			Expected    int64   `json:"expected_keep_from_byte"`
		} `json:"commit"`
	}
	load(t, "resume.json", &v)
	for _, c := range v.Resume {
		point := &transcribev1.ResumePoint{}
		if err := protojson.Unmarshal(c.Point, point); err != nil {
			t.Fatal(err)
		}
		cfg := &transcribev1.StreamingConfig{
			Encoding:   transcribev1.AudioEncoding(transcribev1.AudioEncoding_value[c.Encoding]),
			SampleRate: c.SampleRate, Channels: c.Channels,
		}
		plan, ok := PlanResume(RawFormatOf(cfg), c.StreamStart, point, c.KeptFrom)
		if ok != c.Expected.Resumable {
			t.Errorf("%s: resumable %v", c.Name, ok)
			continue
		}
		if ok && (plan.StartOffsetSeconds != c.Expected.StartOffset || plan.ResendFromByte != c.Expected.ResendFrom ||
			c.SentBytes-plan.ResendFromByte != c.Expected.ResendBytes) {
			t.Errorf("%s: plan %+v, want %+v", c.Name, plan, c.Expected)
		}
	}
	for _, c := range v.Commit {
		got := CommitByte(RawFormat{SampleRate: c.SampleRate, Channels: c.Channels, SampleWidth: 2}, c.StreamStart, c.Offset, c.Committed)
		if got != c.Expected {
			t.Errorf("%s: keep from %d, want %d", c.Name, got, c.Expected)
		}
	}
}

func TestAudioBufferKeepsUnsentBytesWithinItsBound(t *testing.T) {
	b := &AudioBuffer{MaxBytes: 10}
	var given []byte
	sent := int64(0)
	for i := range 200 {
		piece := bytes.Repeat([]byte{byte(i)}, i%7+1)
		if err := b.Append(piece, sent); err != nil {
			if int64(len(piece)) <= b.Room(sent) {
				t.Fatalf("refused %d bytes with room %d", len(piece), b.Room(sent))
			}
		} else {
			given = append(given, piece...)
		}
		sent = min(sent+int64(i%5), b.End())
		if i%3 == 0 {
			b.DropBefore(min(b.KeptFrom()+2, sent))
		}
		kept, _ := b.Read(b.KeptFrom(), 1000)
		if int64(len(kept)) > b.MaxBytes || b.KeptFrom() > sent || !bytes.Equal(kept, given[b.KeptFrom():]) {
			t.Fatalf("step %d: kept %d bytes from %d, sent to %d", i, len(kept), b.KeptFrom(), sent)
		}
	}
}
