#!/usr/bin/env bash
# Builds the operator or hub image without a Docker engine: an OCI image archive assembled with
# umoci from the release binary and the few shared libraries it links (glibc, libgcc), running as
# a non-root user. `kind load image-archive` and `k3s ctr images import` accept the result.
#   deploy/image/build-oci.sh [operator|hub] [TAG]   -> target/images/govdc-COMPONENT-TAG.oci.tar
# GOVDC_OCI_BINARY=PATH packs that binary instead of building the release one.
# Needs umoci (and skopeo to check the result): apt-get install umoci skopeo
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
component=${1:-operator}
tag=${2:-$(sed -n 's/^appVersion: "\(.*\)"/\1/p' "$root/charts/govdc/Chart.yaml")}
case $component in
  # The operator's default command; the hub's comes from its StatefulSet (serve --config ...).
  operator) command=run; ports=8080/tcp ;;
  hub) command=serve; ports=50051/tcp ;;
  *) echo "build-oci.sh: unknown component $component (operator or hub)" >&2; exit 2 ;;
esac
binary_name=govdc-$component
name=govdc/$binary_name
# A work directory per component and tag: tests build their own tags side by side.
work=$root/target/images/work-$component-$tag
out=$root/target/images/$binary_name-$tag.oci.tar
command -v umoci >/dev/null || { echo "build-oci.sh: umoci is missing (apt-get install umoci)" >&2; exit 1; }

if [[ -n ${GOVDC_OCI_BINARY:-} ]]; then
  # A binary built already (the tests pack their debug build instead of building a release).
  binary=$GOVDC_OCI_BINARY
else
  cargo build --release --locked -p "$binary_name" --bin "$binary_name" --manifest-path "$root/Cargo.toml"
  binary=$root/target/release/$binary_name
fi

rm -rf "$work" && mkdir -p "$work"
umoci init --layout "$work/layout"
umoci new --image "$work/layout:$tag"
umoci unpack --rootless --image "$work/layout:$tag" "$work/bundle"
rootfs=$work/bundle/rootfs

# The binary and exactly the shared objects it loads, at the paths the loader expects.
install -D -m 0755 "$binary" "$rootfs/usr/local/bin/$binary_name"
for library in $(ldd "$binary" | grep -o '/[^ ]*'); do
  install -D -m 0755 "$library" "$rootfs$library"
done
mkdir -p "$rootfs/etc" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
echo "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin" > "$rootfs/etc/passwd"
echo "nonroot:x:65532:" > "$rootfs/etc/group"

umoci repack --image "$work/layout:$tag" "$work/bundle"
umoci config --image "$work/layout:$tag" \
  --config.entrypoint "/usr/local/bin/$binary_name" --config.cmd "$command" \
  --config.user 65532:65532 --config.exposedports "$ports" \
  --config.label "org.opencontainers.image.title=$binary_name" \
  --config.label "org.opencontainers.image.version=$tag" \
  --manifest.annotation "org.opencontainers.image.ref.name=$tag"
umoci gc --layout "$work/layout"

# An OCI archive is the layout, tarred; its index names the image for importers.
mkdir -p "$(dirname "$out")"
tar -C "$work/layout" -cf "$out" .
if command -v skopeo >/dev/null; then
  skopeo inspect --format '{{.Architecture}} {{.Os}} layers={{len .Layers}}' "oci-archive:$out:$tag"
fi
echo "built $out ($name:$tag)"
