package spec

// WarmPool is a group's warm pool: up to Size instances created ahead of need, booted once
// (cloud-init done, checked in when the group's check-in is on) and parked in State. A
// scale-out takes pool members before it launches cold, and the pool refills in the
// background. Pool members hold room on their hosts and count toward maxNodes, but not toward
// the group's size or its metrics.
type WarmPool struct {
	Size  int
	State PoolState `json:",omitempty"`
	// ReuseOnScaleIn returns instances a scale-in retires to the pool (up to Size) instead of
	// destroying them.
	ReuseOnScaleIn bool `json:",omitempty"`
}

// PoolState is how a warm-pool member waits.
type PoolState string

// Pool states, as warmPool.state writes them.
const (
	// PoolStopped: shut down; a take boots it again (its cloud-init ran already).
	PoolStopped PoolState = "stopped"
	// PoolSaved: saved to disk with libvirt's managed save; a take restores it, memory intact.
	PoolSaved PoolState = "saved"
	// PoolRunning: left running; a take only moves it into the group.
	PoolRunning PoolState = "running"
)

// PoolStates lists every pool state, for validation and help texts.
func PoolStates() []PoolState { return []PoolState{PoolStopped, PoolSaved, PoolRunning} }

// PoolStatus is a group's warm pool as status shows it.
type PoolStatus struct {
	Size           int       `json:"size"`
	State          PoolState `json:"state"`
	ReuseOnScaleIn bool      `json:"reuseOnScaleIn,omitempty"`
	// Ready counts the members parked and ready to be taken; Warming those being created,
	// booted or parked.
	Ready   int `json:"ready"`
	Warming int `json:"warming"`
	// Taken counts the members scale-outs took over the group's life.
	Taken int `json:"taken"`
}
