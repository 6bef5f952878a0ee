package activities

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/premiscale/premiscale/internal/spec"
)

// Reports that come while a signal to their group is under way go together in the next one;
// each group's reports go in their own signals; every report's batch says how its signal went.
func TestBatcherGroupsWhatComesBehindASendUnderWay(t *testing.T) {
	var r batcher[spec.InstanceStatus]
	release := make(chan struct{})
	var mu sync.Mutex
	sent := map[string][][]spec.InstanceStatus{}
	send := func(group string) func([]spec.InstanceStatus) error {
		return func(sts []spec.InstanceStatus) error {
			mu.Lock()
			first := len(sent[group]) == 0
			sent[group] = append(sent[group], sts)
			mu.Unlock()
			if first && group == "g1" {
				<-release // the first signal to g1 is under way while the others come
			}
			if group == "g2" {
				return errors.New("group g2 not found")
			}
			return nil
		}
	}
	first := r.join("g1", spec.InstanceStatus{Name: "a"}, send("g1"))
	var later []*batch[spec.InstanceStatus]
	for _, name := range []string{"b", "c", "d"} {
		later = append(later, r.join("g1", spec.InstanceStatus{Name: name}, send("g1")))
	}
	other := r.join("g2", spec.InstanceStatus{Name: "x"}, send("g2"))
	close(release)
	for _, b := range append([]*batch[spec.InstanceStatus]{first, other}, later...) {
		<-b.done
	}
	if first.err != nil || later[0].err != nil {
		t.Errorf("g1's reports: %v, %v; want delivered", first.err, later[0].err)
	}
	if other.err == nil {
		t.Error("g2's report: delivered, want the signal's error")
	}
	mu.Lock()
	g1 := sent["g1"]
	// "a" may go alone or, if the sender had not started yet, with the others: never is a
	// report sent twice or left out.
	var names []string
	for _, sts := range g1 {
		for _, st := range sts {
			names = append(names, st.Name)
		}
	}
	if len(names) != 4 || len(g1) > 2 {
		t.Errorf("g1 got %v in %d signals, want a, b, c, d in at most 2", names, len(g1))
	}
	if len(sent["g2"]) != 1 || len(sent["g2"][0]) != 1 {
		t.Errorf("g2 got %v, want its one report in one signal", sent["g2"])
	}
	mu.Unlock()
	// The sender lets go of its group just after its last batch.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		n := len(r.queues)
		r.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d groups still queued after every batch was sent", n)
		}
	}
}
