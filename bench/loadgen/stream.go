package main

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"time"
)

// dialer opens one stream of either path.
type dialer interface {
	open(ctx context.Context, index int) (streamConn, error)
}

// streamConn is one open stream: the config (or URL) is sent and the stream is ready for audio.
type streamConn interface {
	// sendAudio sends one frame; the frame may be reused once it returns.
	sendAudio(frame []byte) error
	// closeSend ends the audio (half-close, or CloseStream).
	closeSend() error
	// next returns the frame number a result answers, ok false for other messages, and
	// io.EOF once the stream ended normally.
	next() (seq uint64, ok bool, err error)
	// abort drops the stream at once.
	abort()
}

// streamRun is one stream's schedule and measurements.
type streamRun struct {
	index    int
	o        options
	conn     streamConn
	start    time.Time // when frame 0 is due
	frames   int       // frames sent in all
	first    int       // first measured frame
	last     int       // one past the last measured frame
	received []bool    // by frame number: a result came back
	sentAt   []int64   // by frame number: when its send began, in ns after start

	mu        sync.Mutex
	latencies []int32 // microseconds from the start of the send, measured frames only
	fromDue   []int32 // microseconds from when the frame was due, measured frames only
	sendLags  []int32 // microseconds, how late each measured frame was sent
	sent      int     // measured frames actually sent
	expected  int     // measured frames sent that the upstream answers
	dups      int
	unknown   int
	err       error
}

func newStreamRun(index int, o options) *streamRun {
	first := int(o.warmup / o.frame)
	measured := int(o.duration / o.frame)
	return &streamRun{
		index:     index,
		o:         o,
		frames:    first + measured,
		first:     first,
		last:      first + measured,
		received:  make([]bool, first+measured),
		sentAt:    make([]int64, first+measured),
		latencies: make([]int32, 0, measured),
		fromDue:   make([]int32, 0, measured),
		sendLags:  make([]int32, 0, measured),
	}
}

func (s *streamRun) fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *streamRun) due(seq int) time.Time {
	return s.start.Add(time.Duration(int64(seq) * int64(s.o.frame)))
}

// sendFrame sends frame seq from buf; it reports false once the stream can send no more.
func (s *streamRun) sendFrame(seq int, buf []byte) bool {
	binary.LittleEndian.PutUint64(buf, uint64(seq))
	binary.LittleEndian.PutUint64(buf[8:], uint64(s.index))
	began := time.Since(s.start)
	s.mu.Lock()
	s.sentAt[seq] = int64(began)
	s.mu.Unlock()
	if err := s.conn.sendAudio(buf); err != nil {
		s.fail(err)
		return false
	}
	if seq >= s.first {
		lag := began - time.Duration(int64(seq)*int64(s.o.frame))
		s.mu.Lock()
		s.sent++
		if answered(s.o, seq) {
			s.expected++
		}
		s.sendLags = append(s.sendLags, int32(lag/time.Microsecond))
		s.mu.Unlock()
	}
	return true
}

// sendSlot paces the streams that share one start time: each frame period it sends every
// one of them its next frame, then ends their audio. One timer per slot rather than per
// stream keeps the load generator's own wake-ups few.
func sendSlot(ctx context.Context, streams []*streamRun) {
	if len(streams) == 0 {
		return
	}
	frames := streams[0].frames
	// A few buffers in turn: a frame is never rewritten while a send may still read it.
	var bufs [4][]byte
	for i := range bufs {
		bufs[i] = make([]byte, frameBytes(streams[0].o))
	}
	alive := make([]bool, len(streams))
	for i := range alive {
		alive[i] = true
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for seq := 0; seq < frames; seq++ {
		if wait := time.Until(streams[0].due(seq)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		buf := bufs[seq%len(bufs)]
		for i, s := range streams {
			if alive[i] {
				alive[i] = s.sendFrame(seq, buf)
			}
		}
	}
	for i, s := range streams {
		if alive[i] {
			if err := s.conn.closeSend(); err != nil {
				s.fail(err)
			}
		}
	}
}

// receive matches results to frames until the stream ends.
func (s *streamRun) receive() {
	for {
		seq, ok, err := s.conn.next()
		now := time.Now()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			s.fail(err)
			return
		}
		if !ok {
			continue
		}
		s.mu.Lock()
		switch {
		case seq >= uint64(len(s.received)):
			s.unknown++
		case s.received[seq]:
			s.dups++
		default:
			s.received[seq] = true
			if int(seq) >= s.first && int(seq) < s.last {
				elapsed := now.Sub(s.start)
				s.latencies = append(s.latencies, int32((int64(elapsed)-s.sentAt[seq])/1000))
				s.fromDue = append(s.fromDue, int32(now.Sub(s.due(int(seq)))/time.Microsecond))
			}
		}
		s.mu.Unlock()
	}
}
