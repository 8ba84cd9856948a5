package transcribe

import (
	"errors"
	"math/rand/v2"
	"time"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// The pure decisions behind automatic resume, shared with every client language through
// clients/testdata/README.md. Byte positions count from the first byte of audio the
// application sent (so they span every call of one Stream); times are the stream's seconds as
// the gateway reports them (start_offset_seconds included).

// commitMargin keeps a millisecond before a final result's end, so that times rounded to
// microseconds never let go of a byte the gateway still counts as uncommitted.
const commitMargin = 0.001

// RawFormat is raw audio whose bytes map exactly to time.
type RawFormat struct {
	SampleRate  int
	Channels    int
	SampleWidth int
}

// FrameBytes is the size of one sample of every channel.
func (f RawFormat) FrameBytes() int64 { return int64(f.SampleWidth * max(f.Channels, 1)) }

// RawFormatOf is the raw format of a config's audio, or nil for containerised audio.
func RawFormatOf(cfg *transcribev1.StreamingConfig) *RawFormat {
	width := map[transcribev1.AudioEncoding]int{
		transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR16: 2,
		transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR32: 4,
		transcribev1.AudioEncoding_AUDIO_ENCODING_MULAW:    1,
		transcribev1.AudioEncoding_AUDIO_ENCODING_ALAW:     1,
	}[cfg.GetEncoding()]
	if width == 0 || cfg.GetSampleRate() == 0 {
		return nil
	}
	return &RawFormat{SampleRate: int(cfg.GetSampleRate()), Channels: int(max(cfg.GetChannels(), 1)), SampleWidth: width}
}

// CommitByte is the first byte still needed once final results reach committed (stream time),
// for a call that began at streamStart with start_offset_seconds streamOffset.
func CommitByte(f RawFormat, streamStart int64, streamOffset, committed float64) int64 {
	frames := int64((committed-streamOffset-commitMargin)*float64(f.SampleRate) + 1e-6)
	return streamStart + max(frames, 0)*f.FrameBytes()
}

// ResumePlan is what the next call sends: its start offset and the byte it resends from.
type ResumePlan struct {
	StartOffsetSeconds float64
	ResendFromByte     int64
}

// PlanResume says what to resend after a call that began at streamStart ended with point;
// ok is false when it cannot be resumed (containerised audio, or the audio from the resume
// position on is no longer kept).
func PlanResume(f *RawFormat, streamStart int64, point *transcribev1.ResumePoint, keptFrom int64) (ResumePlan, bool) {
	if f == nil || point == nil {
		return ResumePlan{}, false
	}
	from := streamStart + int64(point.GetCommittedBytes())
	if from < keptFrom {
		return ResumePlan{}, false
	}
	return ResumePlan{StartOffsetSeconds: point.GetCommittedSeconds(), ResendFromByte: from}, true
}

// Backoff is the exponential backoff with full jitter before resume attempt (1, 2, ...).
func Backoff(attempt int, initial, maxDelay time.Duration) time.Duration {
	ceiling := initial << min(max(attempt-1, 0), 30)
	if ceiling > maxDelay || ceiling <= 0 {
		ceiling = maxDelay
	}
	return time.Duration(rand.Int64N(int64(ceiling) + 1))
}

// errNoRoom is returned by AudioBuffer.Append when unsent audio fills the buffer.
var errNoRoom = errors.New("no room: the audio before the end was not sent yet")

// AudioBuffer holds the audio given so far minus what is committed, at most MaxBytes: past that
// it drops its oldest bytes already sent (a resume that needs them then gives up), never
// unsent ones.
type AudioBuffer struct {
	MaxBytes int64
	data     []byte
	start    int64 // absolute position of data[0]
}

// KeptFrom is the first byte still kept; End is one past the last byte given.
func (b *AudioBuffer) KeptFrom() int64 { return b.start }
func (b *AudioBuffer) End() int64      { return b.start + int64(len(b.data)) }

// Room is how many bytes can be appended now, given that bytes before sentTo were sent.
func (b *AudioBuffer) Room(sentTo int64) int64 {
	droppable := max(min(sentTo, b.End())-b.start, 0)
	return b.MaxBytes - int64(len(b.data)) + droppable
}

// Append adds p at the end, dropping sent bytes if the bound needs it.
func (b *AudioBuffer) Append(p []byte, sentTo int64) error {
	if int64(len(p)) > b.Room(sentTo) {
		return errNoRoom
	}
	b.data = append(b.data, p...)
	if over := int64(len(b.data)) - b.MaxBytes; over > 0 {
		b.DropBefore(b.start + over)
	}
	return nil
}

// DropBefore lets go of every byte before pos.
func (b *AudioBuffer) DropBefore(pos int64) {
	cut := min(max(pos-b.start, 0), int64(len(b.data)))
	if cut == 0 {
		return
	}
	b.data = append([]byte(nil), b.data[cut:]...)
	b.start += cut
}

// Read copies up to limit kept bytes from pos (nil at the end).
func (b *AudioBuffer) Read(pos int64, limit int) ([]byte, error) {
	if pos < b.start {
		return nil, errors.New("audio before the kept bytes was asked for")
	}
	from := min(pos-b.start, int64(len(b.data)))
	to := min(from+int64(limit), int64(len(b.data)))
	return append([]byte(nil), b.data[from:to]...), nil
}
