package main

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Storage for clusters with nodes: rancher's local-path-provisioner (the provisioner kind and
// k3s ship), built from its Go module by build.sh and run as the Deployment
// local-path-storage/local-path-provisioner, behind the default StorageClass `standard`
// (kind's name). A claim of the class is bound once a pod that uses it is scheduled
// (WaitForFirstConsumer): the provisioner makes a directory for it on that pod's node, under the
// node's own directory (nodes/nI/local-path, kept across down/up like etcd's data, removed with
// --purge), and a hostPath PersistentVolume tied to the node. The directory is made 0777 by the
// helper pod's setup script (upstream's default), so that a non-root pod (the hub runs as uid
// 65532) can write it: fsGroup does not apply to hostPath volumes.

const (
	localPathImage        = "docker.io/govdc/local-path-provisioner:v0.0.30"
	localPathHelperImage  = "docker.io/govdc/busybox:1.35.0"
	localPathNamespace    = "local-path-storage"
	defaultStorageClass   = "standard"
	localPathProvisioner  = "rancher.io/local-path"
	localPathDirUnderNode = "local-path"
)

// localPathDir is where node n keeps its provisioned volumes.
func (n nodeSpec) localPathDir() string { return n.path(localPathDirUnderNode) }

// localPathConfig is the provisioner's config.json: one directory per node.
func localPathConfig(nodes []nodeSpec) string {
	type nodePath struct {
		Node  string   `json:"node"`
		Paths []string `json:"paths"`
	}
	var m []nodePath
	for _, n := range nodes {
		m = append(m, nodePath{Node: n.name(), Paths: []string{n.localPathDir()}})
	}
	b, _ := json.MarshalIndent(map[string]any{"nodePathMap": m}, "", "  ") // plain values always marshal
	return string(b)
}

// yamlString quotes s for YAML (a JSON string is a YAML flow scalar).
func yamlString(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

// storageManifest renders the provisioner, its RBAC and configuration, and the default
// StorageClass, as upstream's deploy/local-path-storage.yaml has them, with the project's images
// (never pulled: there is no registry) and the nodes' directories.
func storageManifest(nodes []nodeSpec) string {
	helperPod := strings.Join([]string{
		"apiVersion: v1",
		"kind: Pod",
		"metadata: {name: helper-pod}",
		"spec:",
		"  priorityClassName: system-node-critical",
		"  tolerations:",
		"  - {key: node.kubernetes.io/disk-pressure, operator: Exists, effect: NoSchedule}",
		"  containers:",
		"  - name: helper-pod",
		"    image: " + localPathHelperImage,
		"    imagePullPolicy: Never",
		"",
	}, "\n")
	return fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: local-path-provisioner-service-account, namespace: %[1]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: local-path-provisioner-role, namespace: %[1]s}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list, watch, create, patch, update, delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: local-path-provisioner-role}
rules:
- {apiGroups: [""], resources: [nodes, persistentvolumeclaims, configmaps, pods, pods/log], verbs: [get, list, watch]}
- {apiGroups: [""], resources: [persistentvolumes], verbs: [get, list, watch, create, patch, update, delete]}
- {apiGroups: [""], resources: [events], verbs: [create, patch]}
- {apiGroups: [storage.k8s.io], resources: [storageclasses], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: local-path-provisioner-bind, namespace: %[1]s}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: local-path-provisioner-role}
subjects:
- {kind: ServiceAccount, name: local-path-provisioner-service-account, namespace: %[1]s}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: local-path-provisioner-bind}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: local-path-provisioner-role}
subjects:
- {kind: ServiceAccount, name: local-path-provisioner-service-account, namespace: %[1]s}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: %[1]s}
data:
  config.json: %[2]s
  setup: %[3]s
  teardown: %[4]s
  helperPod.yaml: %[5]s
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: local-path-provisioner, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: local-path-provisioner}}
  template:
    metadata:
      labels: {app: local-path-provisioner}
    spec:
      serviceAccountName: local-path-provisioner-service-account
      priorityClassName: system-cluster-critical
      tolerations:
      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoSchedule}
      containers:
      - name: local-path-provisioner
        image: %[6]s
        imagePullPolicy: Never
        command: [/local-path-provisioner, --debug, start, --config, /etc/config/config.json, --helper-image, %[7]s]
        env:
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        - {name: CONFIG_MOUNT_PATH, value: /etc/config/}
        resources:
          requests: {cpu: 10m, memory: 32Mi}
          limits: {memory: 128Mi}
        securityContext:
          runAsNonRoot: true
          runAsUser: 65532
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {drop: [ALL]}
        volumeMounts:
        - {name: config-volume, mountPath: /etc/config/}
      volumes:
      - name: config-volume
        configMap: {name: local-path-config}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: %[8]s
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: %[9]s
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
`, localPathNamespace, yamlString(localPathConfig(nodes)),
		yamlString("#!/bin/sh\nset -eu\nmkdir -m 0777 -p \"$VOL_DIR\"\n"),
		yamlString("#!/bin/sh\nset -eu\nrm -rf \"$VOL_DIR\"\n"),
		yamlString(helperPod), localPathImage, localPathHelperImage, defaultStorageClass, localPathProvisioner)
}
