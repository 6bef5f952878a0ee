package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/premiscale/premiscale/internal/config"
	"github.com/premiscale/premiscale/internal/spec"
	"github.com/premiscale/premiscale/internal/testservices"
)

const kubeDir = "kubernetes"

// kubeKinds are the kinds the manifests may hold, each decoded into its API type.
var kubeKinds = map[string]func() any{
	"v1/Namespace":        func() any { return &corev1.Namespace{} },
	"v1/Secret":           func() any { return &corev1.Secret{} },
	"v1/Service":          func() any { return &corev1.Service{} },
	"v1/ConfigMap":        func() any { return &corev1.ConfigMap{} },
	"apps/v1/StatefulSet": func() any { return &appsv1.StatefulSet{} },
	"apps/v1/Deployment":  func() any { return &appsv1.Deployment{} },
	"apps/v1/DaemonSet":   func() any { return &appsv1.DaemonSet{} },
	"batch/v1/Job":        func() any { return &batchv1.Job{} },
}

// decodeStrict turns YAML into JSON (rejecting duplicate keys) and decodes it into out,
// rejecting any field out's type does not have: a misspelt key fails instead of vanishing.
func decodeStrict(doc []byte, out any) error {
	js, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

// splitDocs splits a multi-document YAML file, dropping documents that are only comments.
func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(data), -1) {
		empty := true
		for _, line := range strings.Split(d, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
			}
		}
		if !empty {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

type kubeObject struct {
	file string
	kind string // apiVersion/kind
	name string
	obj  any
}

// decodeManifests decodes every document of data strictly into its API type.
func decodeManifests(t *testing.T, file string, data []byte) []kubeObject {
	t.Helper()
	var out []kubeObject
	for i, doc := range splitDocs(data) {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			t.Errorf("%s document %d: %v", file, i+1, err)
			continue
		}
		kind := head.APIVersion + "/" + head.Kind
		newObj, ok := kubeKinds[kind]
		if !ok {
			t.Errorf("%s document %d: kind %s is not one the test knows; add it to kubeKinds", file, i+1, kind)
			continue
		}
		obj := newObj()
		if err := decodeStrict(doc, obj); err != nil {
			t.Errorf("%s: %s %q: %v", file, head.Kind, head.Metadata.Name, err)
			continue
		}
		if head.Metadata.Name == "" {
			t.Errorf("%s document %d: %s without a name", file, i+1, head.Kind)
		}
		out = append(out, kubeObject{file: file, kind: kind, name: head.Metadata.Name, obj: obj})
	}
	return out
}

func readKustomization(t *testing.T) ktypes.Kustomization {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(kubeDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k ktypes.Kustomization
	if err := decodeStrict(data, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	return k
}

// TestKustomizationListsEveryFile checks that every file kustomization.yaml names exists and
// that every file of the folder is named: a manifest nobody applies is a manifest that rots.
func TestKustomizationListsEveryFile(t *testing.T) {
	k := readKustomization(t)
	listed := map[string]string{}
	for _, r := range k.Resources {
		listed[r] = "resources"
	}
	for _, g := range k.ConfigMapGenerator {
		for _, f := range g.FileSources {
			_, path, _ := strings.Cut(f, "=") // "key=path" or "path"
			if path == "" {
				path = f
			}
			listed[path] = "configMapGenerator " + g.Name
		}
	}
	for path, where := range listed {
		if _, err := os.Stat(filepath.Join(kubeDir, path)); err != nil {
			t.Errorf("kustomization.yaml %s lists %s: %v", where, path, err)
		}
	}
	err := filepath.WalkDir(kubeDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(kubeDir, path)
		if rel == "kustomization.yaml" {
			return nil
		}
		if _, ok := listed[filepath.ToSlash(rel)]; !ok {
			t.Errorf("%s is not listed in kustomization.yaml", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// kubeResources decodes every manifest kustomization.yaml lists.
func kubeResources(t *testing.T) []kubeObject {
	t.Helper()
	var objs []kubeObject
	for _, r := range readKustomization(t).Resources {
		data, err := os.ReadFile(filepath.Join(kubeDir, r))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, decodeManifests(t, r, data)...)
	}
	return objs
}

// TestManifestsDecodeStrictly decodes each manifest into the Kubernetes API types, rejecting
// unknown fields, and checks the references between them: Secret keys, Services' selectors and
// the StatefulSets' governing Services.
func TestManifestsDecodeStrictly(t *testing.T) {
	objs := kubeResources(t)
	if len(objs) == 0 {
		t.Fatal("no manifests")
	}
	secretKeys := map[string]bool{}
	var podLabels []map[string]string
	services := map[string]*corev1.Service{}
	var templates []corev1.PodTemplateSpec
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.Secret:
			for k := range v.StringData {
				secretKeys[v.Name+"/"+k] = true
			}
		case *corev1.Service:
			services[v.Name] = v
		case *appsv1.StatefulSet:
			templates = append(templates, v.Spec.Template)
			if _, ok := objByName(objs, "v1/Service", v.Spec.ServiceName); !ok {
				t.Errorf("StatefulSet %s: serviceName %q is no Service", v.Name, v.Spec.ServiceName)
			}
			if len(v.Spec.VolumeClaimTemplates) == 0 {
				t.Errorf("StatefulSet %s keeps no data: no volumeClaimTemplates", v.Name)
			}
		case *appsv1.Deployment:
			templates = append(templates, v.Spec.Template)
		case *appsv1.DaemonSet:
			templates = append(templates, v.Spec.Template)
		case *batchv1.Job:
			templates = append(templates, v.Spec.Template)
		}
	}
	for _, tpl := range templates {
		podLabels = append(podLabels, tpl.Labels)
		for _, c := range slices.Concat(tpl.Spec.InitContainers, tpl.Spec.Containers) {
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					ref := e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
					if !secretKeys[ref] {
						t.Errorf("container %s: env %s reads secret key %s, which secrets.yaml does not set", c.Name, e.Name, ref)
					}
				}
			}
		}
	}
	for name, svc := range services {
		matched := false
		for _, labels := range podLabels {
			ok := len(svc.Spec.Selector) > 0
			for k, v := range svc.Spec.Selector {
				ok = ok && labels[k] == v
			}
			matched = matched || ok
		}
		if !matched {
			t.Errorf("Service %s selects no pod template (selector %v)", name, svc.Spec.Selector)
		}
	}
}

func objByName(objs []kubeObject, kind, name string) (kubeObject, bool) {
	for _, o := range objs {
		if o.kind == kind && o.name == name {
			return o, true
		}
	}
	return kubeObject{}, false
}

// TestKustomizeBuild builds the kustomization the way `kubectl apply -k` does and decodes its
// output strictly: generated ConfigMaps, the namespace and the image are applied, and every
// reference to a generated ConfigMap follows its hashed name.
func TestKustomizeBuild(t *testing.T) {
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), kubeDir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", kubeDir, err)
	}
	out, err := resMap.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	objs := decodeManifests(t, "kustomize build", out)
	configMaps := map[string]bool{}
	for _, o := range objs {
		if cm, ok := o.obj.(*corev1.ConfigMap); ok {
			configMaps[cm.Name] = true
		}
	}
	for _, r := range resMap.Resources() {
		if r.GetKind() != "Namespace" && r.GetNamespace() != "premiscale" {
			t.Errorf("%s %s is in namespace %q, want premiscale", r.GetKind(), r.GetName(), r.GetNamespace())
		}
	}
	for _, o := range objs {
		var tpl *corev1.PodTemplateSpec
		switch v := o.obj.(type) {
		case *appsv1.StatefulSet:
			tpl = &v.Spec.Template
		case *appsv1.Deployment:
			tpl = &v.Spec.Template
		case *appsv1.DaemonSet:
			tpl = &v.Spec.Template
			if img := v.Spec.Template.Spec.Containers[0].Image; !strings.Contains(img, "/premiscale/premiscale:") {
				t.Errorf("DaemonSet %s image %q: the kustomization's images entry was not applied", v.Name, img)
			}
		case *batchv1.Job:
			tpl = &v.Spec.Template
		default:
			continue
		}
		for _, v := range tpl.Spec.Volumes {
			if v.ConfigMap != nil && !configMaps[v.ConfigMap.Name] {
				t.Errorf("%s %s: volume %s uses ConfigMap %q, which the build does not hold", o.kind, o.name, v.Name, v.ConfigMap.Name)
			}
		}
	}
	for _, want := range []string{"mysql-init-", "temporal-setup-", "premiscale-config-"} {
		found := false
		for name := range configMaps {
			found = found || strings.HasPrefix(name, want)
		}
		if !found {
			t.Errorf("no generated ConfigMap %s<hash> in %v", want, configMaps)
		}
	}
}

// TestWorkerConfigLoadsInThePod loads premiscale/config.yaml with the environment the
// DaemonSet gives the worker (secrets and the downward API replaced by sample values) and
// checks that every variable the config expands is one the pod sets.
func TestWorkerConfigLoadsInThePod(t *testing.T) {
	o, ok := objByName(kubeResources(t), "apps/v1/DaemonSet", "premiscale-worker")
	if !ok {
		t.Fatal("no DaemonSet premiscale-worker")
	}
	ds := o.obj.(*appsv1.DaemonSet)
	c := ds.Spec.Template.Spec.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.Value != "":
			env[e.Name] = e.Value
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName":
			env[e.Name] = "kvm1"
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "status.hostIP":
			env[e.Name] = "10.10.0.11"
		default:
			env[e.Name] = "secret-" + strings.ToLower(e.Name)
		}
	}
	if !slices.Equal(c.Command[len(c.Command)-4:], []string{"worker", "-c", "/etc/premiscale/config.yaml", "--log-stdout"}) {
		t.Errorf("worker command %v", c.Command)
	}

	path := filepath.Join(kubeDir, "premiscale", "config.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	cfg, err := config.Parse(data, path, func(name string) (string, bool) {
		v, ok := env[name]
		if !ok {
			missing = append(missing, name)
		}
		return v, ok
	})
	if len(missing) > 0 {
		t.Errorf("%s expands %v, which the DaemonSet does not set", path, missing)
	}
	if err != nil {
		t.Fatalf("%s in the pod's environment:\n%v", path, err)
	}
	if h, ok := cfg.Host("kvm1"); !ok || h.URI != "qemu:///system" {
		t.Errorf("hosts = %+v; want the node itself on its local socket", cfg.Controller.Autoscale.Hosts)
	}
	if cfg.Controller.Checkin.URL != "http://10.10.0.11:8090" || cfg.Controller.Healthcheck.Host != "10.10.0.11" {
		t.Errorf("check-in URL %q, health host %q: want the node's address", cfg.Controller.Checkin.URL, cfg.Controller.Healthcheck.Host)
	}
	if pid := cfg.Controller.PidFile; !strings.HasPrefix(pid, "/run/premiscale/") {
		t.Errorf("pid file %s is not on the writable /run/premiscale volume", pid)
	}
	var probePort int32
	for _, p := range c.Ports {
		if p.Name == c.ReadinessProbe.HTTPGet.Port.StrVal {
			probePort = p.ContainerPort
		}
	}
	if int(probePort) != cfg.Controller.Healthcheck.Port {
		t.Errorf("readiness probe port %d, config health port %d", probePort, cfg.Controller.Healthcheck.Port)
	}
}

// searchAttributesInScript reads the --name X --type Y pairs of the namespace setup script.
func searchAttributesInScript(t *testing.T, script string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, m := range regexp.MustCompile(`--name (\w+) --type (\w+)`).FindAllStringSubmatch(script, -1) {
		got[m[1]] = m[2]
	}
	return got
}

// TestTemporalSetupScript checks the script registers exactly the search attributes the group
// workflow sets, then runs it twice against the real Temporal server with a fresh namespace,
// through the same temporal CLI release the admin-tools image ships (testenv installs it).
func TestTemporalSetupScript(t *testing.T) {
	script := filepath.Join(kubeDir, "temporal", "setup-namespace.sh")
	data, err := os.ReadFile(script)
	if err != nil {
		t.Fatal(err)
	}
	// What the workflows set and the worker checks for at start (spec.SearchAttributes).
	want := map[string]string{}
	for _, a := range spec.SearchAttributes {
		typ := strings.TrimPrefix(a.GetValueType().String(), "INDEXED_VALUE_TYPE_")
		want[a.GetName()] = strings.ToUpper(typ[:1]) + strings.ToLower(typ[1:])
	}
	if got := searchAttributesInScript(t, string(data)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s registers %v; the workflows set %v", script, got, want)
	}

	if _, err := exec.LookPath("temporal"); err != nil {
		t.Fatalf("the temporal CLI is not on PATH (testenv/up installs it into $(go env GOPATH)/bin): %v", err)
	}
	addr := testservices.TemporalAddress(t)
	ns := testservices.UniqueName(t, "setup")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = exec.CommandContext(ctx, "temporal", "operator", "namespace", "delete", "--namespace", ns, "--yes", "--address", addr).Run()
	})
	for run := 1; run <= 2; run++ {
		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
		cmd := exec.CommandContext(ctx, "sh", script)
		cmd.Env = append(os.Environ(), "TEMPORAL_ADDRESS="+addr, "PREMISCALE_NAMESPACE="+ns, "NAMESPACE_RETENTION=24h")
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("run %d of %s: %v\n%s", run, script, err, out)
		}
		for name, typ := range want {
			if !regexp.MustCompile(`(?m)^\s*` + name + `\s+` + typ + `\b`).Match(out) {
				t.Errorf("run %d: search attribute %s (%s) not listed:\n%s", run, name, typ, out)
			}
		}
	}
}
