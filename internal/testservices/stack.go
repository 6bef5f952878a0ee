package testservices

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

// Stack is a private set of every service a worker needs, for a test that stops and starts
// them: a Temporal dev server, a MariaDB, an InfluxDB and one session libvirtd per host.
type Stack struct {
	Temporal *Temporal
	MariaDB  *MariaDB
	InfluxDB *InfluxDB
	Hosts    []*Libvirtd
}

// StartStack starts a Stack with hosts libvirt hosts (the first runs as premiscale-h1, the
// next as premiscale-h2, …), the services side by side.
func StartStack(t testing.TB, hosts int) *Stack {
	t.Helper()
	st := &Stack{Temporal: newTemporal(t), MariaDB: newMariaDB(t), InfluxDB: newInfluxDB(t)}
	for i := range hosts {
		st.Hosts = append(st.Hosts, newLibvirtd(t, LibvirtdOptions{User: hostUser(i)}))
	}
	services := append([]*Service{st.Temporal.Service, st.MariaDB.Service, st.InfluxDB.Service}, st.hostServices()...)
	errs := make([]error, len(services))
	var wg sync.WaitGroup
	for i, s := range services {
		wg.Go(func() { errs[i] = s.start() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("testservices: %v", err)
	}
	return st
}

// Services lists the stack's services: Temporal, MariaDB, InfluxDB, then the hosts.
func (st *Stack) Services() []*Service {
	return append([]*Service{st.Temporal.Service, st.MariaDB.Service, st.InfluxDB.Service}, st.hostServices()...)
}

func (st *Stack) hostServices() []*Service {
	var out []*Service
	for _, h := range st.Hosts {
		out = append(out, h.Service)
	}
	return out
}

// AgentOptions are o pointed at the stack: its Temporal, a fresh database on its MariaDB and
// on its InfluxDB, and, when o.URI is empty, the first host's test driver.
func (st *Stack) AgentOptions(t testing.TB, o AgentOptions) AgentOptions {
	t.Helper()
	state, ts := st.MariaDB.Database(t), st.InfluxDB.Database(t)
	o.TemporalAddr, o.State, o.Timeseries = st.Temporal.Addr(), &state, &ts
	if o.URI == "" && len(st.Hosts) > 0 {
		o.URI = st.Hosts[0].TestURI()
	}
	return o
}

// HostUsers is how many users testenv/hosts creates: premiscale-h1 … premiscale-h4.
const HostUsers = 4

// hostUser is the user of the stack's host i: premiscale-h1 … premiscale-h4, then again from
// the first (each daemon has its own folders, so several may share a user).
func hostUser(i int) string {
	return fmt.Sprintf("premiscale-h%d", i%HostUsers+1)
}
