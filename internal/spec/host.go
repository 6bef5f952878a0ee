package spec

import "time"

// Host is a hypervisor host as the fleet sees it: whether it is up, its capacity, and what
// PremiScale's instances hold on it. Workers prove each host they serve alive at a short
// period; a host without proof for longer than hostDownAfter is down.
type Host struct {
	Name string `json:"name"`
	Up   bool   `json:"up"`
	// Down says why a host is not up ("no proof of life for 2m0s: ..."); "" when up.
	Down string `json:"down,omitempty"`
	// DownFor is how long it has been down: since its last proof of life became older than
	// hostDownAfter (0 for a host never seen).
	DownFor time.Duration `json:"downFor,omitempty"`
	// LastSeen is the last proof of life (zero if none), LastError the last failure to reach it.
	LastSeen  time.Time `json:"lastSeen,omitzero"`
	LastError string    `json:"lastError,omitempty"`
	// Worker is the worker that last reached it.
	Worker string `json:"worker,omitempty"`
	// CPUs and MemoryMiB are the host's own; the ratios and reserve say how much of them
	// placement may hand out: (capacity − reserve) × overcommit.
	CPUs          int   `json:"cpus"`
	MemoryMiB     int64 `json:"memoryMiB"`
	FreeMemoryMiB int64 `json:"freeMemoryMiB"`
	Allowance
	// UsedCPUs, UsedMemoryMiB and Domains are what PremiScale's domains (every group's) hold.
	UsedCPUs      int   `json:"usedCpus"`
	UsedMemoryMiB int64 `json:"usedMemoryMiB"`
	Domains       int   `json:"domains"`
}

// Allowance is what a host's config lets placement hand out of it: (capacity − reserve) ×
// overcommit.
type Allowance struct {
	CPUOvercommit     float64 `json:"cpuOvercommit"`
	MemoryOvercommit  float64 `json:"memoryOvercommit"`
	ReservedCPUs      int     `json:"reservedCpus"`
	ReservedMemoryMiB int64   `json:"reservedMemoryMiB"`
}
