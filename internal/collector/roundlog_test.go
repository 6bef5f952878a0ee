package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
)

// TestRoundLogSaysEachChangeOnce feeds a run of rounds through the collector's log: a failure
// repeated every round is one warning, a different failure is another, recovery is one line,
// and failures because a dependency cannot be reached (which the worker's watch reports) are
// debug throughout.
func TestRoundLogSaysEachChangeOnce(t *testing.T) {
	refused := fmt.Errorf("collect host metrics on host h1: write to InfluxDB: %w",
		&net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connect: connection refused")})
	rejected := errors.New("collect host metrics on host h1: write to InfluxDB: 400 Bad Request: partial write")
	gone := errors.New("collect host metrics on host h1: database not found")
	rounds := []error{
		nil, refused, refused, refused, nil, // an outage: nothing above debug
		rejected, rejected, rejected, gone, gone, rejected, nil, // two failures, in turn
		nil, nil,
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	var r roundLog
	for _, err := range rounds {
		r.log(log, err)
	}
	var got []string
	dec := json.NewDecoder(&buf)
	for dec.More() {
		var line struct {
			Level, Err   string
			FailedRounds int `json:"failed_rounds"`
		}
		if err := dec.Decode(&line); err != nil {
			t.Fatal(err)
		}
		got = append(got, fmt.Sprintf("%s %d %s", line.Level, line.FailedRounds, line.Err))
	}
	want := []string{
		"WARN 1 " + rejected.Error(),
		"WARN 4 " + gone.Error(),
		"WARN 6 " + rejected.Error(), // again, after the other failure
		"INFO 6 ",                    // recovered
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log lines above debug:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
