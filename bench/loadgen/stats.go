package main

import (
	"math"
	"slices"
)

// cdfPoints are the quantiles reported for plotting a latency distribution.
var cdfPoints = []float64{0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95,
	0.97, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1}

func summarise(streams []*streamRun, o options) map[string]any {
	var latencies, fromDue, lags []int32
	var sent, expected, received, dups, unknown, failed, opened int
	errorCounts := map[string]int{}
	for _, s := range streams {
		s.mu.Lock()
		latencies = append(latencies, s.latencies...)
		fromDue = append(fromDue, s.fromDue...)
		lags = append(lags, s.sendLags...)
		sent += s.sent
		expected += s.expected
		received += len(s.latencies)
		dups += s.dups
		unknown += s.unknown
		if s.conn != nil {
			opened++
		}
		if s.err != nil {
			failed++
			errorCounts[s.err.Error()]++
		}
		s.mu.Unlock()
	}
	slices.Sort(latencies)
	slices.Sort(fromDue)
	slices.Sort(lags)
	errors := make([]map[string]any, 0, 5)
	for msg, n := range errorCounts {
		if len(errors) == 5 {
			break
		}
		errors = append(errors, map[string]any{"error": msg, "streams": n})
	}
	return map[string]any{
		"streams":             o.streams,
		"opened":              opened,
		"failed_streams":      failed,
		"errors":              errors,
		"frames_sent":         sent,
		"results":             received,
		"results_expected":    expected,
		"lost":                expected - received,
		"duplicates":          dups,
		"unknown":             unknown,
		"result_interval_ms":  float64(o.resultInterval.Microseconds()) / 1000,
		"frame_ms":            float64(o.frame.Microseconds()) / 1000,
		"frame_bytes":         frameBytes(o),
		"latency_ms":          describe(latencies),
		"latency_from_due_ms": describe(fromDue),
		"send_lag_ms":         describe(lags),
		"latency_cdf_ms":      cdf(latencies),
		"streams_per_conn":    o.streamsPerConn,
	}
}

// describe summarises microsecond samples in milliseconds.
func describe(us []int32) map[string]float64 {
	if len(us) == 0 {
		return map[string]float64{"n": 0}
	}
	slices.Sort(us)
	var sum float64
	for _, v := range us {
		sum += float64(v)
	}
	return map[string]float64{
		"n":    float64(len(us)),
		"mean": sum / float64(len(us)) / 1000,
		"p50":  quantile(us, 0.50),
		"p90":  quantile(us, 0.90),
		"p95":  quantile(us, 0.95),
		"p99":  quantile(us, 0.99),
		"p999": quantile(us, 0.999),
		"max":  float64(us[len(us)-1]) / 1000,
	}
}

// cdf gives [quantile, milliseconds] pairs of sorted samples.
func cdf(sorted []int32) [][2]float64 {
	if len(sorted) == 0 {
		return nil
	}
	points := make([][2]float64, 0, len(cdfPoints))
	for _, q := range cdfPoints {
		points = append(points, [2]float64{q, quantile(sorted, q)})
	}
	return points
}

// quantile of sorted microsecond samples (nearest rank), in milliseconds.
func quantile(sorted []int32, q float64) float64 {
	rank := int(math.Ceil(q*float64(len(sorted)))) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return float64(sorted[rank]) / 1000
}
