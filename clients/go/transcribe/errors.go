package transcribe

import (
	"strings"
	"unicode"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	transcribev1 "github.com/transcribe-gateway/clients/go/gen/transcribe/v1"
)

// Error is a stream that ended with a non-OK gRPC status. Reason is the ErrorInfo reason of the
// status details (such as "DRAINING"), "" if none; ResumePoint is the ResumePoint the gateway
// sent with UNAVAILABLE, if any. With resume on (the default) the Stream has already used it and
// returns the Error only once it cannot resume.
type Error struct {
	Code        codes.Code
	Message     string
	Reason      string
	ResumePoint *transcribev1.ResumePoint
}

// Error renders the status as the sample programs print it after "error: ".
func (e *Error) Error() string { return StatusName(e.Code) + ": " + e.Message }

// GRPCStatus lets status.FromError and status.Code see the status.
func (e *Error) GRPCStatus() *status.Status { return status.New(e.Code, e.Message) }

// FromStatus reads a status and its details (ErrorInfo, ResumePoint) into an Error.
func FromStatus(st *status.Status) *Error {
	e := &Error{Code: st.Code(), Message: st.Message()}
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			e.Reason = d.GetReason()
		case *transcribev1.ResumePoint:
			e.ResumePoint = d
		}
	}
	return e
}

// StatusName is a status code's canonical name, e.g. INVALID_ARGUMENT for InvalidArgument.
func StatusName(code codes.Code) string {
	if code == codes.Canceled {
		return "CANCELLED" // the one name Go spells differently
	}
	var b strings.Builder
	prev := rune(0)
	for _, r := range code.String() {
		if unicode.IsUpper(r) && unicode.IsLower(prev) {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
		prev = r
	}
	return b.String()
}
