package policy

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

func TestStrategyJSON(t *testing.T) {
	tests := []struct {
		name string
		spec StrategySpec
		json string
	}{
		{"target", StrategySpec{Target: &Target{Value: 60, Tolerance: 0.1}}, `{"Target":{"Value":60,"Tolerance":0.1}}`},
		{"threshold", StrategySpec{Threshold: &Threshold{Upper: 80, Lower: 20, Step: 2}}, `{"Threshold":{"Upper":80,"Lower":20,"Step":2,"StepPercent":0}}`},
		{"fixed", StrategySpec{Fixed: &Fixed{Size: 3}}, `{"Fixed":{"Size":3}}`},
		{"none", StrategySpec{}, `{}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := json.Marshal(tt.spec)
			if err != nil || string(raw) != tt.json {
				t.Fatalf("Marshal = %s, %v; want %s", raw, err, tt.json)
			}
			var back StrategySpec
			if err := json.Unmarshal(raw, &back); err != nil || !reflect.DeepEqual(back, tt.spec) {
				t.Fatalf("Unmarshal(%s) = %+v, %v; want %+v", raw, back, err, tt.spec)
			}
		})
	}
}

// TestStrategyLegacyJSON decodes the flat shape that workflow histories written before
// StrategySpec hold, for every strategy type.
func TestStrategyLegacyJSON(t *testing.T) {
	tests := []struct {
		json string
		want StrategySpec
	}{
		{`{"Type":"target","Target":60,"Tolerance":0.1,"Upper":0,"Lower":0,"StepCount":0,"StepPercent":0,"Size":0}`,
			StrategySpec{Target: &Target{Value: 60, Tolerance: 0.1}}},
		{`{"Type":"threshold","Target":0,"Tolerance":0,"Upper":80,"Lower":20,"StepCount":2,"StepPercent":0,"Size":0}`,
			StrategySpec{Threshold: &Threshold{Upper: 80, Lower: 20, Step: 2}}},
		{`{"Type":"threshold","Target":0,"Tolerance":0,"Upper":100,"Lower":10,"StepCount":0,"StepPercent":25,"Size":0}`,
			StrategySpec{Threshold: &Threshold{Upper: 100, Lower: 10, StepPercent: 25}}},
		{`{"Type":"fixed","Target":0,"Tolerance":0,"Upper":0,"Lower":0,"StepCount":0,"StepPercent":0,"Size":3}`,
			StrategySpec{Fixed: &Fixed{Size: 3}}},
		// Validation never let these in; a check without a strategy holds, as the old engine did.
		{`{"Type":"","Target":0,"Tolerance":0,"Upper":0,"Lower":0,"StepCount":0,"StepPercent":0,"Size":0}`, StrategySpec{}},
		{`{"Type":"pid","Target":1}`, StrategySpec{}},
		{`null`, StrategySpec{}},
	}
	for _, tt := range tests {
		var got StrategySpec
		if err := json.Unmarshal([]byte(tt.json), &got); err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Unmarshal(%s) = %+v, %v; want %+v", tt.json, got, err, tt.want)
		}
	}
	var s StrategySpec
	if err := json.Unmarshal([]byte(`{"Target":"sixty"}`), &s); err == nil {
		t.Errorf("a target that is not an object decoded: %+v", s)
	}
}

// TestLegacySpecEvaluatesAsBefore decodes a whole spec in the legacy shape and checks that
// Evaluate decides with it exactly as with the spec written today.
func TestLegacySpecEvaluatesAsBefore(t *testing.T) {
	legacy := `{"Min":1,"Max":10,"Increment":0,"Checks":[
		{"Name":"cpu","Metric":"cpu","Window":60000000000,"OnError":"hold","Fallback":0,"Staleness":0,
		 "Strategy":{"Type":"target","Target":50,"Tolerance":0.1,"Upper":0,"Lower":0,"StepCount":0,"StepPercent":0,"Size":0}},
		{"Name":"queue","Metric":"query","Query":"q","Window":60000000000,"OnError":"hold",
		 "Strategy":{"Type":"threshold","Target":0,"Tolerance":0,"Upper":100,"Lower":10,"StepCount":2,"StepPercent":0,"Size":0}},
		{"Name":"base","Metric":"","Window":60000000000,"OnError":"hold",
		 "Strategy":{"Type":"fixed","Target":0,"Tolerance":0,"Upper":0,"Lower":0,"StepCount":0,"StepPercent":0,"Size":2}}],
		"Schedules":null}`
	var got Spec
	if err := json.Unmarshal([]byte(legacy), &got); err != nil {
		t.Fatal(err)
	}
	want := Spec{Min: 1, Max: 10, Checks: []Check{
		{Name: "cpu", Metric: MetricCPU, Window: time.Minute, OnError: OnErrorHold, Strategy: StrategySpec{Target: &Target{Value: 50, Tolerance: 0.1}}},
		{Name: "queue", Metric: MetricQuery, Query: "q", Window: time.Minute, OnError: OnErrorHold, Strategy: StrategySpec{Threshold: &Threshold{Upper: 100, Lower: 10, Step: 2}}},
		{Name: "base", Window: time.Minute, OnError: OnErrorHold, Strategy: StrategySpec{Fixed: &Fixed{Size: 2}}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("legacy spec decoded as\n%+v\nwant\n%+v", got, want)
	}
	in := inputs(4, map[string]Reading{"cpu": read(80), "queue": read(150)})
	a, _ := Evaluate(got, State{}, in)
	b, _ := Evaluate(want, State{}, in)
	if !reflect.DeepEqual(a, b) || a.To != 7 {
		t.Errorf("legacy spec evaluates to %+v, today's to %+v (want 7)", a, b)
	}
}

// TestRecordedHistoriesDecode finds every policy strategy in the workflow histories the
// workflows package replays (payloads are base64 JSON) and decodes it with StrategySpec: a
// group running when PremiScale is upgraded must keep its policy.
func TestRecordedHistoriesDecode(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "workflows", "testdata", "histories", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded histories found (%v)", err)
	}
	found := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var history any
		if err := json.Unmarshal(data, &history); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, payload := range payloadData(history) {
			raw, err := base64.StdEncoding.DecodeString(payload)
			if err != nil {
				continue
			}
			var doc any
			if json.Unmarshal(raw, &doc) != nil {
				continue
			}
			for _, s := range strategies(doc) {
				found++
				var got StrategySpec
				if err := json.Unmarshal(s, &got); err != nil {
					t.Fatalf("%s: decode %s: %v", filepath.Base(f), s, err)
				}
				// Histories recorded since the strategies became one type each hold that
				// shape; it must decode to a known strategy.
				var legacy struct {
					Type      string
					Target    float64
					Tolerance float64
				}
				if json.Unmarshal(s, &legacy) != nil || legacy.Type == "" {
					if got.Kind() == "" {
						t.Errorf("%s: %s decoded as no strategy", filepath.Base(f), s)
					}
					continue
				}
				if got.Kind() != legacy.Type {
					t.Errorf("%s: %s decoded as a %q strategy", filepath.Base(f), s, got.Kind())
				}
				if legacy.Type == StrategyTarget && !reflect.DeepEqual(got.Target, &Target{Value: legacy.Target, Tolerance: legacy.Tolerance}) {
					t.Errorf("%s: %s decoded as %+v", filepath.Base(f), s, got.Target)
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("no policy strategy found in the recorded histories")
	}
	t.Logf("decoded %d strategies from %d histories", found, len(files))
}

// payloadData collects the data of every Temporal payload in a history exported as JSON.
func payloadData(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if ps, ok := v["payloads"].([]any); ok {
			for _, p := range ps {
				if m, ok := p.(map[string]any); ok {
					if d, ok := m["data"].(string); ok {
						out = append(out, d)
					}
				}
			}
		}
		for _, c := range v {
			out = append(out, payloadData(c)...)
		}
	case []any:
		for _, c := range v {
			out = append(out, payloadData(c)...)
		}
	}
	return out
}

// strategies collects every value under a "Strategy" key in a decoded JSON document.
func strategies(v any) []json.RawMessage {
	var out []json.RawMessage
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if k == "Strategy" {
				raw, _ := json.Marshal(c)
				out = append(out, raw)
				continue
			}
			out = append(out, strategies(c)...)
		}
	case []any:
		for _, c := range v {
			out = append(out, strategies(c)...)
		}
	}
	return out
}
