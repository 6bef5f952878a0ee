// Package chaos holds PremiScale's chaos suite (`make chaos`; not part of `make test`): a group
// run by the built `premiscale worker` on private services (internal/testservices), the worker
// killed with SIGKILL again and again while the group scales out and in, then every dependency
// restarted; after each round the group's status, MySQL and libvirt must agree instance by
// instance (internal/audit). It prints the rounds, the kills and the anomalies.
//
// The suite is behind the build tag chaos:
//
//	go test -tags chaos -run TestChaos -v -timeout 60m ./internal/chaos/
//
// PREMISCALE_CHAOS_ROUNDS (default 9: 36 kills) and PREMISCALE_CHAOS_SEED (default: the time) shape a
// run; the seed is printed so that a run can be repeated.
package chaos
