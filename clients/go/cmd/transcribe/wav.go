package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

var errNotWAV = errors.New("not a RIFF/WAVE file")

const (
	wavFormatPCM        = 0x0001
	wavFormatExtensible = 0xFFFE
)

// wavFormat is the "fmt " chunk of a WAV file.
type wavFormat struct {
	format     uint16 // the sub-format's code for WAVE_FORMAT_EXTENSIBLE
	channels   uint16
	sampleRate uint32
	byteRate   uint32
	blockAlign uint16
	bits       uint16
}

func (f wavFormat) isPCM16() bool {
	return (f.format == wavFormatPCM || f.format == wavFormatExtensible) && f.bits == 16
}

// readWAVHeader reads a WAV file up to the start of its samples and returns their format and
// byte count (0 when the header leaves it open, as streamed WAV files do).
func readWAVHeader(r io.Reader) (wavFormat, int64, error) {
	var riff [12]byte
	if _, err := io.ReadFull(r, riff[:]); err != nil || string(riff[0:4]) != "RIFF" || string(riff[8:12]) != "WAVE" {
		return wavFormat{}, 0, errNotWAV
	}
	var format *wavFormat
	for {
		var header [8]byte
		if _, err := io.ReadFull(r, header[:]); err != nil {
			return wavFormat{}, 0, fmt.Errorf("WAV file without a data chunk: %w", err)
		}
		id, size := string(header[0:4]), int64(binary.LittleEndian.Uint32(header[4:8]))
		switch {
		case id == "data" && format == nil:
			return wavFormat{}, 0, errors.New("WAV data chunk before its fmt chunk")
		case id == "data":
			if format.channels == 0 || format.sampleRate == 0 {
				return wavFormat{}, 0, errors.New("WAV fmt chunk without channels or sample rate")
			}
			if size == 0xFFFFFFFF {
				size = 0
			}
			return *format, size, nil
		case id == "fmt ":
			if size < 16 {
				return wavFormat{}, 0, fmt.Errorf("WAV fmt chunk of %d bytes", size)
			}
			body := make([]byte, size+size%2)
			if _, err := io.ReadFull(r, body); err != nil {
				return wavFormat{}, 0, fmt.Errorf("reading the WAV fmt chunk: %w", err)
			}
			format = parseWAVFormat(body[:size])
		default:
			if _, err := io.CopyN(io.Discard, r, size+size%2); err != nil {
				return wavFormat{}, 0, fmt.Errorf("skipping the WAV %q chunk: %w", id, err)
			}
		}
	}
}

func parseWAVFormat(b []byte) *wavFormat {
	le := binary.LittleEndian
	f := &wavFormat{
		format:     le.Uint16(b[0:2]),
		channels:   le.Uint16(b[2:4]),
		sampleRate: le.Uint32(b[4:8]),
		byteRate:   le.Uint32(b[8:12]),
		blockAlign: le.Uint16(b[12:14]),
		bits:       le.Uint16(b[14:16]),
	}
	// WAVE_FORMAT_EXTENSIBLE: cbSize, valid bits, channel mask, then the sub-format GUID, whose
	// first two bytes are the format code.
	if f.format == wavFormatExtensible && len(b) >= 40 {
		f.format = le.Uint16(b[24:26])
	}
	return f
}
