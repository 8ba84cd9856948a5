package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// interimPrefix marks interim transcripts (--interim) in text output.
const interimPrefix = "~ "

// printer writes responses as text lines (final transcripts, and interim ones with --interim)
// or, with --json, as one JSON object per response and line.
type printer struct {
	w       io.Writer
	json    bool
	interim bool
}

func (p printer) print(resp *transcribev1.StreamTranscribeResponse) error {
	if p.json {
		line, err := jsonLine(resp)
		if err != nil {
			return err
		}
		_, err = p.w.Write(line)
		return err
	}
	result := resp.GetResult()
	if len(result.GetAlternatives()) == 0 {
		return nil
	}
	transcript := strings.TrimSpace(result.GetAlternatives()[0].GetTranscript())
	switch {
	case transcript == "":
		return nil
	case result.GetIsFinal():
		_, err := fmt.Fprintln(p.w, transcript)
		return err
	case p.interim:
		_, err := fmt.Fprintln(p.w, interimPrefix+transcript)
		return err
	}
	return nil
}

// jsonLine renders a response in the protobuf canonical JSON mapping (lowerCamelCase names,
// unset fields left out) on one line. protojson varies its whitespace on purpose; compacting
// makes the output stable.
func jsonLine(resp *transcribev1.StreamTranscribeResponse) ([]byte, error) {
	raw, err := protojson.MarshalOptions{Multiline: false}.Marshal(resp)
	if err != nil {
		return nil, err
	}
	var line bytes.Buffer
	if err := json.Compact(&line, raw); err != nil {
		return nil, err
	}
	line.WriteByte('\n')
	return line.Bytes(), nil
}
