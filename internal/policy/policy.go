// Package policy holds the pure scaling decision: given a group's size, its checks' readings,
// its policy and its policy state, what size should it be and why (Evaluate). It does no I/O
// and reads no clock, so the group workflow can call it directly and tests can feed it any
// history.
package policy

// DefaultTolerance is the fraction around the target inside which target tracking holds.
const DefaultTolerance = 0.1

// Action is what a decision asks the group to do.
type Action string

const (
	Hold     Action = "hold"
	ScaleOut Action = "scale-out"
	ScaleIn  Action = "scale-in"
)
