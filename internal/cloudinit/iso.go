package cloudinit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/kdomanski/iso9660"
)

// VolumeLabel is the ISO9660 volume identifier cloud-init's NoCloud
// datasource searches for.
const VolumeLabel = "cidata"

// BuildISO packs the seed into an ISO9660 image labelled "cidata" holding
// meta-data, user-data and, when present, network-config.
//
// kdomanski/iso9660 writes neither Joliet nor Rock Ridge: names are plain
// ISO9660 identifiers ("meta-data;1", lower case, which the library allows
// itself), and Linux's isofs shows them without the ";1" version, which is
// all cloud-init needs. The library stages files in a temporary directory.
func BuildISO(s Seed) ([]byte, error) {
	if len(s.MetaData) == 0 || len(s.UserData) == 0 {
		return nil, errors.New("build seed ISO: meta-data and user-data are both required by NoCloud")
	}
	w, err := iso9660.NewWriter()
	if err != nil {
		return nil, fmt.Errorf("build seed ISO: %w", err)
	}
	defer w.Cleanup()
	files := []seedFile{{"meta-data", s.MetaData}, {"user-data", s.UserData}}
	if s.NetworkConfig != nil {
		files = append(files, seedFile{"network-config", s.NetworkConfig})
	}
	for _, f := range files {
		if err := w.AddFile(bytes.NewReader(f.data), f.name); err != nil {
			return nil, fmt.Errorf("build seed ISO: add %s: %w", f.name, err)
		}
	}
	var out bytes.Buffer
	if err := w.WriteTo(&out, VolumeLabel); err != nil {
		return nil, fmt.Errorf("build seed ISO: %w", err)
	}
	if err := w.Cleanup(); err != nil {
		return nil, fmt.Errorf("build seed ISO: remove staging directory: %w", err)
	}
	return out.Bytes(), nil
}

type seedFile struct {
	name string
	data []byte
}

// ReadISO reads an ISO9660 image back: its volume label and every file by
// path ("meta-data", "dir/file").
func ReadISO(data []byte) (label string, files map[string][]byte, err error) {
	img, err := iso9660.OpenImage(bytes.NewReader(data))
	if err != nil {
		return "", nil, fmt.Errorf("read ISO: %w", err)
	}
	label, err = img.Label()
	if err != nil {
		return "", nil, fmt.Errorf("read ISO label: %w", err)
	}
	root, err := img.RootDir()
	if err != nil {
		return "", nil, fmt.Errorf("read ISO root directory: %w", err)
	}
	files = make(map[string][]byte)
	if err := readDir(root, "", files, 0); err != nil {
		return "", nil, err
	}
	return label, files, nil
}

// maxISODepth stops a malformed image whose directories loop.
const maxISODepth = 8

func readDir(dir *iso9660.File, prefix string, files map[string][]byte, depth int) error {
	if depth > maxISODepth {
		return fmt.Errorf("read ISO: directories nested deeper than %d at %q", maxISODepth, prefix)
	}
	children, err := dir.GetChildren()
	if err != nil {
		return fmt.Errorf("read ISO directory %q: %w", prefix, err)
	}
	for _, c := range children {
		name := path.Join(prefix, c.Name())
		if c.IsDir() {
			if err := readDir(c, name, files, depth+1); err != nil {
				return err
			}
			continue
		}
		b, err := io.ReadAll(c.Reader())
		if err != nil {
			return fmt.Errorf("read ISO file %s: %w", name, err)
		}
		files[name] = b
	}
	return nil
}
