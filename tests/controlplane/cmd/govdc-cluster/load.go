package main

// `govdc-cluster load NAME ARCHIVE...`: OCI image archives into every node's containerd, as
// `kind load image-archive` does.

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ociIndex, ociManifest and ociConfig are the parts of an OCI layout that name an image.
type ociIndex struct {
	Manifests []struct {
		Digest      string            `json:"digest"`
		Annotations map[string]string `json:"annotations"`
	} `json:"manifests"`
}

type ociManifest struct {
	Config struct {
		Digest string `json:"digest"`
	} `json:"config"`
}

type ociConfig struct {
	Config struct {
		Labels map[string]string `json:"Labels"`
	} `json:"config"`
}

const (
	refNameAnnotation = "org.opencontainers.image.ref.name"
	titleLabel        = "org.opencontainers.image.title"
	// projectRepository holds the images the project builds, as the chart names them
	// (govdc/govdc-operator, govdc/govdc-hub).
	projectRepository = "docker.io/govdc/"
)

// imageBaseName decides the repository a tag-only archive is imported under: "" when every
// manifest names a full reference (containerd keeps it), else govdc/<title>, where title is the
// image's org.opencontainers.image.title label (deploy/image/build-oci.sh sets it to the binary's
// name, which is the repository's last part).
func imageBaseName(index ociIndex, readBlob func(digest string) ([]byte, error)) (string, error) {
	if len(index.Manifests) == 0 {
		return "", errors.New("the index names no image")
	}
	for _, m := range index.Manifests {
		ref := m.Annotations[refNameAnnotation]
		if ref == "" {
			return "", fmt.Errorf("manifest %s has no %s annotation", m.Digest, refNameAnnotation)
		}
		if strings.ContainsAny(ref, "/:@") {
			continue
		}
		data, err := readBlob(m.Digest)
		if err != nil {
			return "", err
		}
		var manifest ociManifest
		if err := json.Unmarshal(data, &manifest); err != nil {
			return "", fmt.Errorf("manifest %s: %w", m.Digest, err)
		}
		if data, err = readBlob(manifest.Config.Digest); err != nil {
			return "", err
		}
		var config ociConfig
		if err := json.Unmarshal(data, &config); err != nil {
			return "", fmt.Errorf("config %s: %w", manifest.Config.Digest, err)
		}
		title := config.Config.Labels[titleLabel]
		if title == "" || strings.ContainsAny(title, "/:@ ") {
			return "", fmt.Errorf("the archive names only the tag %q and its image has no usable %s label to name its repository", ref, titleLabel)
		}
		return projectRepository + title, nil
	}
	return "", nil
}

// archiveBaseName reads an OCI archive's index (and, for a tag-only name, its manifest and
// config) and returns imageBaseName's answer.
func archiveBaseName(archive string) (string, error) {
	files, err := readTarFiles(archive, func(name string) bool {
		return name == "index.json" || strings.HasPrefix(name, "blobs/")
	}, 1<<20)
	if err != nil {
		return "", err
	}
	raw, ok := files["index.json"]
	if !ok {
		return "", fmt.Errorf("%s is no OCI archive: it has no index.json", archive)
	}
	var index ociIndex
	if err := json.Unmarshal(raw, &index); err != nil {
		return "", fmt.Errorf("%s: index.json: %w", archive, err)
	}
	base, err := imageBaseName(index, func(digest string) ([]byte, error) {
		algo, hex, _ := strings.Cut(digest, ":")
		data, ok := files["blobs/"+algo+"/"+hex]
		if !ok {
			return nil, fmt.Errorf("blob %s is missing", digest)
		}
		return data, nil
	})
	if err != nil {
		return "", fmt.Errorf("%s: %w", archive, err)
	}
	return base, nil
}

// readTarFiles returns the regular files of a tar archive whose cleaned names want accepts and
// whose size is at most limit (layers are larger and skipped).
func readTarFiles(path string, want func(string) bool, limit int64) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s is no OCI archive (a tar of an OCI layout): %w", path, err)
		}
		name := strings.TrimPrefix(strings.TrimPrefix(h.Name, "./"), "/")
		if h.Typeflag != tar.TypeReg || h.Size > limit || !want(name) {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, name, err)
		}
		files[name] = data
	}
}

// load imports each archive into every node of the cluster.
func load(c *cluster, archives []string) error {
	s, err := c.loadState()
	if err != nil {
		return err
	}
	if s.Nodes == 0 {
		return fmt.Errorf("cluster %q has no nodes; start it with: govdc-cluster up %s --nodes 1", c.Name, c.Name)
	}
	c.Nodes = s.Nodes
	if !c.nodesRunning(s) {
		return fmt.Errorf("cluster %q is not running; run: govdc-cluster up %s --nodes %d", c.Name, c.Name, s.Nodes)
	}
	for _, a := range archives {
		for i := range s.Nodes {
			if err := c.importImage(c.node(i, s), a); err != nil {
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "govdc-cluster: %s: loaded %s into %d node(s)\n", c.Name, a, s.Nodes)
	}
	return nil
}
