package main

import (
	"fmt"
	"io"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
	"github.com/transcribe-gateway/clients/go/transcribe"
)

// printer writes responses as text lines or, with --json, one JSON object per line.
type printer struct {
	w       io.Writer
	json    bool
	interim bool
}

func (p printer) print(resp *transcribev1.StreamTranscribeResponse) error {
	if p.json {
		line, err := transcribe.JSONLine(resp)
		if err != nil {
			return err
		}
		_, err = p.w.Write(line)
		return err
	}
	if line, ok := transcribe.TextLine(resp, p.interim); ok {
		_, err := fmt.Fprintln(p.w, line)
		return err
	}
	return nil
}
