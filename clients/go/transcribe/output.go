package transcribe

import (
	"bytes"
	"encoding/json"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// InterimPrefix marks interim transcripts in the sample programs' text output.
const InterimPrefix = "~ "

// TextLine is what the sample programs print for a response in text mode: a final, non-empty
// transcript alone, an interim one after InterimPrefix when interim is set; ok is false when
// the response prints nothing.
func TextLine(resp *transcribev1.StreamTranscribeResponse, interim bool) (line string, ok bool) {
	result := resp.GetResult()
	if len(result.GetAlternatives()) == 0 {
		return "", false
	}
	text := strings.TrimSpace(result.GetAlternatives()[0].GetTranscript())
	switch {
	case text == "":
		return "", false
	case result.GetIsFinal():
		return text, true
	case interim:
		return InterimPrefix + text, true
	}
	return "", false
}

// JSONLine renders a response in protobuf's canonical JSON mapping on one line (protojson
// varies its whitespace on purpose; compacting makes the output stable), newline included.
func JSONLine(resp *transcribev1.StreamTranscribeResponse) ([]byte, error) {
	raw, err := protojson.Marshal(resp)
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
