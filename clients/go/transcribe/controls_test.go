package transcribe

import (
	"encoding/json"
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// sentItem is one entry of a vector's sent list: an audio byte range or a control.
type sentItem struct {
	from, to int64
	ctl      *transcribev1.Control
}

func (s sentItem) String() string {
	if s.ctl != nil {
		return "control " + protojson.Format(s.ctl)
	}
	return fmt.Sprintf("audio [%d, %d)", s.from, s.to)
}

func parseSent(t *testing.T, raw []json.RawMessage) []sentItem {
	t.Helper()
	var out []sentItem
	for _, r := range raw {
		var item struct {
			Audio   []int64         `json:"audio"`
			Control json.RawMessage `json:"control"`
		}
		if err := json.Unmarshal(r, &item); err != nil {
			t.Fatal(err)
		}
		if item.Control != nil {
			c := &transcribev1.Control{}
			if err := protojson.Unmarshal(item.Control, c); err != nil {
				t.Fatal(err)
			}
			out = append(out, sentItem{ctl: c})
		} else {
			out = append(out, sentItem{from: item.Audio[0], to: item.Audio[1]})
		}
	}
	return out
}

// sendCall is what one call sends from pos and control seq on, by the decisions Stream.send
// takes (ControlLog.Next, SendUntil), with messages of at most limit bytes, adjacent audio
// merged as the vectors list it.
func sendCall(log *ControlLog, pos, seq, end, frame int64, limit int) []sentItem {
	var out []sentItem
	for {
		next := log.Next(seq)
		if next != nil && next.At <= pos {
			log.Sent(next)
			seq = next.Seq + 1
			out = append(out, sentItem{ctl: next.Req})
			continue
		}
		at := int64(-1)
		if next != nil {
			at = next.At
		}
		until := SendUntil(pos, end, frame, limit, true, at)
		if until == pos {
			return out
		}
		if n := len(out); n > 0 && out[n-1].ctl == nil && out[n-1].to == pos {
			out[n-1].to = until
		} else {
			out = append(out, sentItem{from: pos, to: until})
		}
		pos = until
	}
}

func sameSent(got, want []sentItem) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i].from != want[i].from || got[i].to != want[i].to || !proto.Equal(got[i].ctl, want[i].ctl) {
			return false
		}
	}
	return true
}

func TestControlsAreSentAndResentAsTheVectorsSay(t *testing.T) {
	var v struct {
		Controls []struct {
			Name       string            `json:"name"`
			Encoding   string            `json:"encoding"`
			SampleRate uint32            `json:"sample_rate"`
			Channels   uint32            `json:"channels"`
			Items      []json.RawMessage `json:"items"`
			Sent       []json.RawMessage `json:"sent"`
			Point      json.RawMessage   `json:"resume_point"`
			Resent     []json.RawMessage `json:"resent"`
		} `json:"controls"`
	}
	load(t, "controls.json", &v)
	if len(v.Controls) == 0 {
		t.Fatal("no control vectors")
	}
	for _, c := range v.Controls {
		cfg := &transcribev1.StreamingConfig{
			Encoding:   transcribev1.AudioEncoding(transcribev1.AudioEncoding_value[c.Encoding]),
			SampleRate: c.SampleRate, Channels: c.Channels,
		}
		format := RawFormatOf(cfg)
		if format == nil {
			t.Fatalf("%s: not raw audio", c.Name)
		}
		point := &transcribev1.ResumePoint{}
		if err := protojson.Unmarshal(c.Point, point); err != nil {
			t.Fatal(err)
		}
		// Messages of odd sizes, so that the merging, not the cutting, makes the ranges.
		for _, limit := range []int{maxChunkBytes, 1000, 7} {
			log := &ControlLog{}
			var end int64
			for _, raw := range c.Items {
				var item struct {
					Audio   *int64          `json:"audio"`
					Control json.RawMessage `json:"control"`
				}
				if err := json.Unmarshal(raw, &item); err != nil {
					t.Fatal(err)
				}
				if item.Audio != nil {
					end += *item.Audio
					continue
				}
				ctl := &transcribev1.Control{}
				if err := protojson.Unmarshal(item.Control, ctl); err != nil {
					t.Fatal(err)
				}
				if err := log.Add(end, ctl, true); err != nil {
					t.Fatal(err)
				}
			}
			sent := sendCall(log, 0, 0, end, format.FrameBytes(), limit)
			if want := parseSent(t, c.Sent); !sameSent(sent, want) {
				t.Errorf("%s (limit %d): sent %v, want %v", c.Name, limit, sent, want)
			}
			plan, ok := PlanResume(format, 0, point, 0)
			if !ok {
				t.Fatalf("%s: not resumable", c.Name)
			}
			seq := log.Rewind(plan.ResendFromByte)
			resent := sendCall(log, plan.ResendFromByte, seq, end, format.FrameBytes(), limit)
			if want := parseSent(t, c.Resent); !sameSent(resent, want) {
				t.Errorf("%s (limit %d): resent %v, want %v", c.Name, limit, resent, want)
			}
		}
	}
}

func TestControlLogDropsOnlySentControlsPastItsBound(t *testing.T) {
	fin := &transcribev1.Control{Command: &transcribev1.Control_Finalize{Finalize: &transcribev1.Finalize{}}}
	log := &ControlLog{MaxKept: 2}
	for at := int64(0); at < 2; at++ {
		if err := log.Add(at*10, fin, true); err != nil {
			t.Fatal(err)
		}
	}
	if log.Room() || log.Add(20, fin, true) == nil {
		t.Fatal("a full log of unsent controls took another")
	}
	log.Sent(log.Next(0))
	if !log.Room() {
		t.Fatal("no room once the oldest was sent")
	}
	if err := log.Add(20, fin, true); err != nil {
		t.Fatal(err)
	}
	if first := log.Next(0); log.Len() != 2 || first.At != 10 {
		t.Fatalf("kept %d, first at %v", log.Len(), first)
	}
	// A commit lets go of sent controls only.
	log.Commit(100)
	if log.Len() != 2 {
		t.Fatalf("a commit dropped unsent controls: %d kept", log.Len())
	}
}

func TestSendUntilKeepsWholeFrames(t *testing.T) {
	cases := []struct {
		pos, end, frame int64
		limit           int
		ended           bool
		controlAt       int64
		want            int64
	}{
		{0, 5, 4, 100, false, -1, 4},   // a frame cut short waits
		{4, 5, 4, 100, false, -1, 4},   // nothing whole to send
		{4, 5, 4, 100, true, -1, 5},    // the end goes as it is
		{0, 100, 4, 10, false, -1, 8},  // the limit, down to a frame
		{0, 100, 4, 10, false, 3, 3},   // a control inside a frame keeps its place
		{0, 100, 4, 10, false, 50, 8},  // a later control does not matter yet
		{0, 100, 1, 10, false, -1, 10}, // containerised: any byte
	}
	for _, c := range cases {
		if got := SendUntil(c.pos, c.end, c.frame, c.limit, c.ended, c.controlAt); got != c.want {
			t.Errorf("%+v: %d", c, got)
		}
	}
}
