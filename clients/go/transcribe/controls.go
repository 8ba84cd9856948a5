package transcribe

import (
	"errors"

	"google.golang.org/protobuf/proto"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// MaxKeptControls bounds a ControlLog by default: past it the oldest sent control goes.
const MaxKeptControls = 1024

// PlacedControl is a control at the byte position of the audio it follows, with its order
// among all controls given (Seq) and whether a resume sends it again (Resend).
type PlacedControl struct {
	Seq    int64
	At     int64
	Req    *transcribev1.Control
	Resend bool
}

// ControlLog holds the controls given so far (clients/testdata/README.md, controls.json). A
// call sends a control after the audio before its position and before the audio after it
// (Next, Sent). Once sent, a control that only matters live (a KeepAlive, containerised audio,
// or the same Finalize already kept at the same place) goes; a Finalize kept for resending
// stays until its position is committed (Commit) or a resume starts at or after it (Rewind),
// and the resumed call sends it again at its place. It holds at most MaxKept: past that it
// drops its oldest sent control (a resume then does not resend it), never unsent ones.
type ControlLog struct {
	MaxKept int // 0: MaxKeptControls
	entries []PlacedControl
	nextSeq int64
	// sentSeq: the current call has sent every control with a lower Seq.
	sentSeq int64
}

func (l *ControlLog) maxKept() int {
	if l.MaxKept <= 0 {
		return MaxKeptControls
	}
	return l.MaxKept
}

// Len is how many controls are kept.
func (l *ControlLog) Len() int { return len(l.entries) }

// Room says whether a control can be added now.
func (l *ControlLog) Room() bool {
	return len(l.entries) < l.maxKept() || l.entries[0].Seq < l.sentSeq
}

// Add places c after the audio before at (the end of the audio so far); resumable says the
// audio can be resumed by bytes (raw), so that a Finalize is kept for resending.
func (l *ControlLog) Add(at int64, c *transcribev1.Control, resumable bool) error {
	if !l.Room() {
		return errors.New("no room: every kept control is still unsent")
	}
	if n := len(l.entries); n > 0 && at < l.entries[n-1].At {
		return errors.New("controls are added in the order of the audio")
	}
	resend := resumable && c.GetFinalize() != nil
	for _, e := range l.entries {
		if resend && e.Resend && e.At == at && proto.Equal(e.Req, c) {
			resend = false // the same control at the same place: resending one is enough
		}
	}
	l.entries = append(l.entries, PlacedControl{Seq: l.nextSeq, At: at, Req: c, Resend: resend})
	l.nextSeq++
	if len(l.entries) > l.maxKept() {
		l.entries = l.entries[1:] // the oldest, sent (Room said so)
	}
	return nil
}

// Next is the first control a call whose cursor is at seq has still to send (nil: none yet).
func (l *ControlLog) Next(seq int64) *PlacedControl {
	for i := range l.entries {
		if l.entries[i].Seq >= seq {
			c := l.entries[i]
			return &c
		}
	}
	return nil
}

// Sent records that the current call has sent c (and every control before it).
func (l *ControlLog) Sent(c *PlacedControl) {
	l.sentSeq = max(l.sentSeq, c.Seq+1)
	if !c.Resend {
		l.keep(func(e PlacedControl) bool { return e.Seq != c.Seq })
	}
}

// Commit lets go of the sent controls at or before pos: the audio before pos has its final
// results.
func (l *ControlLog) Commit(pos int64) { l.dropSentThrough(pos) }

// Rewind prepares a resume that resends the audio from pos: the sent controls at or before pos
// go (their audio is committed), the later ones are to be sent again. It returns the Seq the
// next call's cursor starts at.
func (l *ControlLog) Rewind(pos int64) int64 {
	l.dropSentThrough(pos)
	l.sentSeq = l.nextSeq
	if len(l.entries) > 0 {
		l.sentSeq = l.entries[0].Seq
	}
	return l.sentSeq
}

func (l *ControlLog) dropSentThrough(pos int64) {
	l.keep(func(e PlacedControl) bool { return !(e.Seq < l.sentSeq && e.At <= pos) })
}

func (l *ControlLog) keep(ok func(PlacedControl) bool) {
	kept := l.entries[:0:0]
	for _, e := range l.entries {
		if ok(e) {
			kept = append(kept, e)
		}
	}
	l.entries = kept
}

// SendUntil is where the next audio message from pos ends (pos: nothing to send yet): at most
// limit bytes, up to the audio given so far (end), and on a whole sample frame counted from the
// first byte (chunks are whole frames): a frame cut short waits for its rest. Two exceptions:
// the audio has ended (its last bytes go as they are), or the next control (controlAt >= 0)
// comes first (the message stops there, even within a frame, so the control keeps its place).
func SendUntil(pos, end, frameBytes int64, limit int, ended bool, controlAt int64) int64 {
	stop := min(end, pos+int64(limit))
	if controlAt >= 0 && controlAt <= stop {
		return max(controlAt, pos)
	}
	if ended && stop == end {
		return stop
	}
	return max(stop-stop%max(frameBytes, 1), pos)
}
