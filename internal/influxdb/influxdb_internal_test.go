package influxdb

import (
	"strings"
	"testing"
	"time"
)

func TestFluxString(t *testing.T) {
	tests := []struct{ in, want string }{
		{"web", `"web"`},
		{"", `""`},
		{`a"b`, `"a\"b"`},
		{`a\b`, `"a\\b"`},
		{`a${b}`, `"a\x24{b}"`},
		{`$`, `"\x24"`},
		{"ünï", `"ünï"`},
		{`web" or true or "`, `"web\" or true or \""`},
	}
	for _, tt := range tests {
		if got := fluxString(tt.in); got != tt.want {
			t.Errorf("fluxString(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestGroupMeanFluxEscapesEverything(t *testing.T) {
	q := groupMeanFlux(`db"/autogen`, `g"1`, `cpu"`, 90*time.Second, []string{`i"1`, `i\2`})
	for _, want := range []string{
		`from(bucket: "db\"/autogen")`,
		`range(start: -90000000000ns)`,
		`r._field == "cpu\""`,
		`r.group == "g\"1"`,
		`r.instance != "i\"1" and r.instance != "i\\2"`,
	} {
		if !strings.Contains(q, want) {
			t.Errorf("query does not contain %s:\n%s", want, q)
		}
	}
	if q2 := groupMeanFlux("b", "g", "f", time.Minute, nil); strings.Contains(q2, "r.instance !=") {
		t.Errorf("query without exclusions filters instances:\n%s", q2)
	}
}

func TestShardDuration(t *testing.T) {
	tests := []struct{ retention, want time.Duration }{
		{time.Hour, time.Hour},
		{47 * time.Hour, time.Hour},
		{48 * time.Hour, 24 * time.Hour},
		{30 * 24 * time.Hour, 24 * time.Hour},
		{365 * 24 * time.Hour, 7 * 24 * time.Hour},
	}
	for _, tt := range tests {
		if got := shardDuration(tt.retention); got != tt.want {
			t.Errorf("shardDuration(%s) = %s, want %s", tt.retention, got, tt.want)
		}
	}
}
