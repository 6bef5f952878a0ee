// Package deploy holds no code: it is the production deployment files (systemd/, kubernetes/,
// grafana/, examples/) and the tests that keep them working. The tests load production.yaml
// with exactly the systemd environment file's variables, verify and rate the systemd unit
// with systemd-analyze, decode every Kubernetes manifest strictly into the API types and
// build the kustomization, and run every InfluxDB query of the Grafana dashboard against the
// real InfluxDB with data the real collector wrote.
//
//	go test -count=1 ./deploy/
package deploy
