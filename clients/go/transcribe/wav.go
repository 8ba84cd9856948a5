package transcribe

import (
	"encoding/binary"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// FallbackBytesPerSecond paces audio whose byte rate cannot be known without decoding it:
// 128 kbit/s, a common MP3 rate.
const FallbackBytesPerSecond = 16000

// maxHeaderBytes is the most read to find a WAV header's data chunk.
const maxHeaderBytes = 1 << 20

// AudioPlan is what to send for an input and how fast, by the rules of
// clients/testdata/README.md. The audio is the input's bytes from PayloadOffset on,
// PayloadBytes of them (-1: to the end).
type AudioPlan struct {
	Encoding       transcribev1.AudioEncoding
	SampleRate     uint32
	Channels       uint32
	BytesPerSecond int
	FrameBytes     int
	ChunkBytes     int
	PayloadOffset  int
	PayloadBytes   int64
}

// Raw says whether the plan sends raw audio (bytes map to time).
func (p AudioPlan) Raw() bool { return sampleWidth(p.Encoding) > 0 }

type wavHeader struct {
	format, channels, bits uint16
	rate                   uint32
	dataOffset             int
	dataSize               uint32
}

// readWAV finds the fmt and data chunks in head. isWAV is false for input that is not
// RIFF/WAVE; more is true when head stops before the data chunk. The Go module proxy offers no
// maintained WAV reader this project may use (see the README), so this is the minimal parse.
func readWAV(head []byte) (h wavHeader, isWAV, more bool) {
	if len(head) < 12 {
		n := min(len(head), 4)
		return h, false, string(head[:n]) == "RIFF"[:n]
	}
	if string(head[0:4]) != "RIFF" || string(head[8:12]) != "WAVE" {
		return h, false, false
	}
	le := binary.LittleEndian
	haveFmt := false
	for pos := 12; ; {
		if pos+8 > len(head) {
			return h, true, true
		}
		id, size := string(head[pos:pos+4]), le.Uint32(head[pos+4:pos+8])
		body := pos + 8
		switch id {
		case "fmt ":
			if size < 16 {
				return h, false, false
			}
			if body+int(min(size, 40)) > len(head) {
				return h, true, true
			}
			h.format, h.channels = le.Uint16(head[body:]), le.Uint16(head[body+2:])
			h.rate, h.bits = le.Uint32(head[body+4:]), le.Uint16(head[body+14:])
			if h.format == 0xFFFE && size >= 40 {
				h.format = le.Uint16(head[body+24:]) // the sub-format GUID's first two bytes
			}
			haveFmt = true
		case "data":
			if !haveFmt || h.channels == 0 || h.rate == 0 {
				return h, false, false
			}
			h.dataOffset, h.dataSize = body, size
			return h, true, false
		}
		pos = body + int(size) + int(size&1)
		if pos > maxHeaderBytes {
			return h, false, false
		}
	}
}

// PlanAudio decides what to send for an input that starts with head (a whole file, or what a
// pipe has given so far: with complete false, ok false means "read more"). A 16-bit PCM WAV is
// sent as raw linear16 (its data chunk) with its rate and channels; anything else whole as
// containerised audio, paced at its WAV header's byte rate if it is integer PCM, else at
// FallbackBytesPerSecond. An explicit encoding sends the WAV data chunk (or the whole input)
// with that encoding; a sampleRate other than 0 overrides the header.
func PlanAudio(head []byte, encoding transcribev1.AudioEncoding, sampleRate uint32, chunkMs int, complete bool) (AudioPlan, bool) {
	h, isWAV, more := readWAV(head)
	if more && !complete && len(head) < maxHeaderBytes {
		return AudioPlan{}, false
	}
	isWAV = isWAV && !more
	const unspecified = transcribev1.AudioEncoding_AUDIO_ENCODING_UNSPECIFIED
	if encoding == unspecified && isWAV && h.format == 1 && h.bits == 16 {
		encoding = transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR16
	}
	if encoding == unspecified {
		rate := FallbackBytesPerSecond
		if isWAV && h.format == 1 {
			rate = int(h.rate) * int(h.channels) * int(h.bits) / 8
		}
		return AudioPlan{BytesPerSecond: rate, FrameBytes: 1, ChunkBytes: max(rate*chunkMs/1000, 1), PayloadBytes: -1}, true
	}
	p := AudioPlan{Encoding: encoding, SampleRate: sampleRate, Channels: 1, PayloadBytes: -1}
	if isWAV {
		p.Channels = uint32(h.channels)
		if p.SampleRate == 0 {
			p.SampleRate = h.rate
		}
		p.PayloadOffset = h.dataOffset
		available := int64(len(head) - h.dataOffset)
		if size := int64(h.dataSize); size != 0 && size < 0xFFFFFFFF-8 && (!complete || size <= available) {
			p.PayloadBytes = size
		}
	}
	p.FrameBytes = max(sampleWidth(encoding)*int(p.Channels), 1)
	p.BytesPerSecond = sampleWidth(encoding) * int(p.SampleRate) * int(p.Channels)
	if p.BytesPerSecond == 0 {
		p.BytesPerSecond = FallbackBytesPerSecond
	}
	p.ChunkBytes = max(p.BytesPerSecond*chunkMs/1000/p.FrameBytes, 1) * p.FrameBytes
	return p, true
}

func sampleWidth(enc transcribev1.AudioEncoding) int {
	switch enc {
	case transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR16:
		return 2
	case transcribev1.AudioEncoding_AUDIO_ENCODING_LINEAR32:
		return 4
	case transcribev1.AudioEncoding_AUDIO_ENCODING_MULAW, transcribev1.AudioEncoding_AUDIO_ENCODING_ALAW:
		return 1
	}
	return 0
}
