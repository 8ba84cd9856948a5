// Command loadgen opens N concurrent real-time audio streams, either through the gateway
// (gRPC StreamTranscribe) or straight to a Deepgram-compatible websocket, and measures how long
// each audio frame takes to come back as a result.
//
//	loadgen -mode grpc -addr 127.0.0.1:50051 -streams 200 -idle 5s -warmup 3s -duration 15s
//	loadgen -mode ws -url 'ws://127.0.0.1:8080/v1/listen?encoding=linear16&sample_rate=16000' -streams 200
//
// Every frame carries its number in its first 8 bytes (little-endian uint64); the benchmark
// upstream answers a frame with one result whose first word is "f<number>": every frame
// (-result-interval 0, its every-frame profile), or only the frame whose audio crosses each
// multiple of -result-interval (its deepgram profile, one result a second). A frame's
// latency is the time from the start of its send to the arrival of its result; it is also
// reported from when the frame was due (its slot in the real-time schedule), which counts a
// sender held back by flow control against the path but adds the load generator's own timer
// lateness (about a millisecond: Go's timers wake through epoll, at millisecond resolution).
// Frames due during the warm-up are sent but not measured.
//
// Progress goes to stdout as JSON lines, one per phase ("opened", "idle_end", "measure_start",
// "measure_end"), then one "result" line with the counts, latency percentiles and the load
// generator's own CPU time, so that a driver can sample other processes at the phase bounds.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"runtime/debug"
	"sync"
	"syscall"
	"time"
)

type options struct {
	mode           string
	addr           string
	url            string
	streams        int
	streamsPerConn int
	idle           time.Duration
	warmup         time.Duration
	duration       time.Duration
	drain          time.Duration
	openTimeout    time.Duration
	openParallel   int
	frame          time.Duration
	sampleRate     int
	resultInterval time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.mode, "mode", "grpc", "grpc (through the gateway) or ws (straight to the upstream)")
	flag.StringVar(&o.addr, "addr", "127.0.0.1:50051", "gateway address, HOST:PORT (-mode grpc)")
	flag.StringVar(&o.url, "url", "", "upstream /v1/listen websocket URL with its query (-mode ws)")
	flag.IntVar(&o.streams, "streams", 1, "concurrent streams")
	flag.IntVar(&o.streamsPerConn, "streams-per-conn", 1, "gRPC streams per HTTP/2 connection (-mode grpc)")
	flag.DurationVar(&o.idle, "idle", 0, "hold the open streams silent this long before the audio starts")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "audio sent before the measured window")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "measured window of audio")
	flag.DurationVar(&o.drain, "drain", 15*time.Second, "how long to wait for the last results after the audio")
	flag.DurationVar(&o.openTimeout, "open-timeout", 60*time.Second, "how long opening all streams may take")
	flag.IntVar(&o.openParallel, "open-parallel", 16, "streams opened at once")
	flag.DurationVar(&o.frame, "frame", 20*time.Millisecond, "audio frame length")
	flag.IntVar(&o.sampleRate, "sample-rate", 16000, "sample rate of the 16-bit mono audio, in hertz")
	flag.DurationVar(&o.resultInterval, "result-interval", 0,
		"audio between the frames the upstream answers (0: it answers every frame)")
	flag.Parse()
	// Every frame allocates a little; collecting less often costs memory, not CPU.
	debug.SetGCPercent(400)
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: %v\n", err)
		os.Exit(1)
	}
}

func validate(o options) error {
	switch {
	case o.mode != "grpc" && o.mode != "ws":
		return fmt.Errorf("-mode must be grpc or ws, got %q", o.mode)
	case o.mode == "ws" && o.url == "":
		return errors.New("-mode ws needs -url")
	case o.streams < 1 || o.streamsPerConn < 1 || o.openParallel < 1:
		return errors.New("-streams, -streams-per-conn and -open-parallel must be at least 1")
	case o.frame <= 0 || o.duration <= 0 || o.warmup < 0 || o.idle < 0 || o.resultInterval < 0:
		return errors.New("-frame and -duration must be positive, -warmup and -idle not negative")
	case frameBytes(o) < 16:
		return errors.New("-frame is too short to carry a frame number")
	}
	return nil
}

// answered says whether the upstream answers frame seq: with a result interval, the frame whose
// audio crosses a multiple of it (counted in bytes, as the upstream does).
func answered(o options, seq int) bool {
	if o.resultInterval == 0 {
		return true
	}
	interval := int64(o.sampleRate) * 2 * int64(o.resultInterval) / int64(time.Second)
	fb := int64(frameBytes(o))
	return fb*int64(seq+1)/interval != fb*int64(seq)/interval
}

func frameBytes(o options) int {
	return int(int64(o.sampleRate) * 2 * int64(o.frame) / int64(time.Second))
}

func run(ctx context.Context, o options) error {
	if err := validate(o); err != nil {
		return err
	}
	var dialer dialer
	if o.mode == "grpc" {
		g, err := newGRPCDialer(o)
		if err != nil {
			return err
		}
		defer g.close()
		dialer = g
	} else {
		dialer = &wsDialer{url: o.url}
	}
	out := json.NewEncoder(os.Stdout)
	began := time.Now()
	cpuStart := cpuTime()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	streams := make([]*streamRun, o.streams)
	for i := range streams {
		streams[i] = newStreamRun(i, o)
	}
	opened := openAll(ctx, dialer, streams, o)
	emit(out, map[string]any{"event": "opened", "opened": opened, "streams": o.streams,
		"elapsed_s": time.Since(began).Seconds()})
	if o.idle > 0 {
		sleepCtx(ctx, o.idle)
		emit(out, map[string]any{"event": "idle_end", "elapsed_s": time.Since(began).Seconds()})
	}

	// Streams start one after another across one frame, as independent clients would, in
	// slots a millisecond apart (the resolution of Go's timers on Linux).
	t0 := time.Now().Add(100 * time.Millisecond)
	slots := max(1, min(int(o.frame/time.Millisecond), o.streams))
	bySlot := make([][]*streamRun, slots)
	var wg sync.WaitGroup
	for i, s := range streams {
		if s.conn == nil {
			continue
		}
		slot := i % slots
		s.start = t0.Add(time.Duration(int64(o.frame) * int64(slot) / int64(slots)))
		bySlot[slot] = append(bySlot[slot], s)
		wg.Add(1)
		go func() { defer wg.Done(); s.receive() }()
	}
	for _, group := range bySlot {
		wg.Add(1)
		go func() { defer wg.Done(); sendSlot(ctx, group) }()
	}
	measureStart := t0.Add(o.warmup)
	measureEnd := measureStart.Add(o.duration + o.frame)
	sleepUntil(ctx, measureStart)
	cpuMeasureStart := cpuTime()
	emit(out, map[string]any{"event": "measure_start", "elapsed_s": time.Since(began).Seconds()})
	sleepUntil(ctx, measureEnd)
	cpuMeasure := cpuTime() - cpuMeasureStart
	emit(out, map[string]any{"event": "measure_end", "elapsed_s": time.Since(began).Seconds()})

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	drained := true
	select {
	case <-done:
	case <-time.After(o.drain + o.frame):
		drained = false
		cancel()
		for _, s := range streams {
			if s.conn != nil {
				s.conn.abort()
			}
		}
		<-done
	}
	result := summarise(streams, o)
	result["event"] = "result"
	result["mode"] = o.mode
	result["drained"] = drained
	result["loadgen_cpu_measure_s"] = cpuMeasure.Seconds()
	result["loadgen_cpu_total_s"] = (cpuTime() - cpuStart).Seconds()
	result["measure_s"] = measureEnd.Sub(measureStart).Seconds()
	result["elapsed_s"] = time.Since(began).Seconds()
	emit(out, result)
	return nil
}

// openAll opens every stream, a few at a time, and returns how many opened.
func openAll(ctx context.Context, d dialer, streams []*streamRun, o options) int {
	ctx, cancel := context.WithTimeout(ctx, o.openTimeout)
	defer cancel()
	sem := make(chan struct{}, o.openParallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	opened := 0
	for _, s := range streams {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			conn, err := d.open(ctx, s.index)
			if err != nil {
				s.fail(fmt.Errorf("open: %w", err))
				return
			}
			s.conn = conn
			mu.Lock()
			opened++
			mu.Unlock()
		}()
	}
	wg.Wait()
	return opened
}

func emit(out *json.Encoder, v map[string]any) {
	if err := out.Encode(v); err != nil {
		fmt.Fprintf(os.Stderr, "loadgen: writing stdout: %v\n", err)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func sleepUntil(ctx context.Context, t time.Time) { sleepCtx(ctx, time.Until(t)) }

// cpuTime is the user plus system CPU time this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
