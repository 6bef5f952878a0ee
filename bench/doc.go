// Package bench measures PremiScale at scale against the real services on 127.0.0.1 (a Temporal
// dev server, MariaDB, InfluxDB, libvirt's test driver) with `premiscale worker` running as its
// own process. Its benchmarks are Go tests behind the benchscale build tag, so `make test` never
// runs them; `make bench-scale` does, and each prints its numbers.
//
// Each benchmark is bounded in time and tuned by PREMISCALE_BENCH_* environment variables (see
// the README's "Performance" section). A new benchmark is a TestXxx function in this folder that
// takes a stack (newStack), starts a worker (stack.startWorker) and prints its numbers with
// report.
package bench
