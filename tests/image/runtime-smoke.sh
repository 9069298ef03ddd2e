#!/usr/bin/env bash
# Offline check of the Dockerfile's runtime stage, for machines without a Docker engine or
# registry access (run as root; needs buildah from Debian, `apt-get install buildah`).
#
# The base images (rust:*-bookworm, gcr.io/distroless/cc-debian12) cannot be pulled offline,
# so this assembles the runtime stage with buildah from scratch with what distroless/cc
# provides to this binary — glibc (libc, libm, ld.so) and libgcc_s from this Debian 12 host,
# the CA bundle, and a passwd entry for uid 65532 — plus the binary (BINARY, default the
# debug build), with the Dockerfile's USER, ENTRYPOINT, CMD, EXPOSE and labels. It then
# runs the image's root filesystem read-only as uid 65532, the way the Helm chart runs it
# (emptyDir volumes at /data and /tmp for the credential store), and checks that
# `--version`, `crd` and `credstore` work there. It prints the image's OCI config.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
binary="${BINARY:-$here/target/debug/apikey-operator}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export STORAGE_DRIVER=vfs BUILDAH_ISOLATION=chroot
[[ -x "$binary" ]] || { echo "no binary at $binary (cargo build first)" >&2; exit 1; }

label() { sed -n "s/^.*$1=\"\{0,1\}\([^\"\\\\]*\)\"\{0,1\}.*$/\1/p" "$here/Dockerfile" | head -n 1 | sed 's/ *$//'; }
ref="$(label org.opencontainers.image.ref.name)"
user="$(sed -n 's/^USER //p' "$here/Dockerfile" | tail -n 1)"

# The stand-in base: the files of distroless/cc the binary uses.
root="$work/rootfs"
mkdir -p "$root"/{etc/ssl/certs,lib/x86_64-linux-gnu,lib64,usr/local/bin,tmp,data}
for lib in libc.so.6 libm.so.6 libgcc_s.so.1; do
  cp -L "/lib/x86_64-linux-gnu/$lib" "$root/lib/x86_64-linux-gnu/"
done
cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"
cp -L /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > "$root/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' > "$root/etc/group"
chmod 1777 "$root/tmp"

container="$(buildah from scratch)"
buildah copy "$container" "$root" / >/dev/null
buildah copy --chmod 0755 "$container" "$binary" /usr/local/bin/apikey-operator >/dev/null
buildah config \
  --label org.opencontainers.image.ref.name="$ref" \
  --user "$user" \
  --port 8080 --port 8400 \
  --entrypoint '["/usr/local/bin/apikey-operator"]' \
  --cmd run \
  "$container"
image="$ref:runtime-smoke"
buildah commit --quiet "$container" "$image" >/dev/null
buildah rm "$container" >/dev/null
buildah push --quiet "$image" "oci:$work/oci:smoke"
echo "image config:" >&2
buildah inspect --type image "$image" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["OCIv1"]["config"], indent=1))'

# Run its root filesystem read-only, as the image's user, with the chart's writable volumes.
rootfs="$work/unpacked"
mkdir -p "$rootfs"
mnt="$(buildah from --quiet "$image")"
cp -a "$(buildah mount "$mnt")/." "$rootfs/"
buildah umount "$mnt" >/dev/null
buildah rm "$mnt" >/dev/null
# Runs "$@" in a private mount namespace: the image's root read-only, tmpfs at /tmp and /data
# (the chart's volumes), as the image's user. With IN_BACKGROUND_UNTIL=<text>, the command runs
# until it prints <text> on stdout, then is stopped; its output is shown.
in_image() {
  unshare --mount --fork bash -euo pipefail -c '
    root="$1"; shift
    mount --bind "$root" "$root"
    mount -o remount,ro,bind "$root"
    mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
    mount -t tmpfs -o mode=0777 tmpfs "$root/data"
    if [[ -z "${IN_BACKGROUND_UNTIL:-}" ]]; then
      exec chroot --userspec="$USERSPEC" "$root" "$@"
    fi
    out="$(mktemp)"
    chroot --userspec="$USERSPEC" "$root" "$@" > "$out" 2>&1 &
    pid=$!
    for _ in $(seq 50); do grep -q "$IN_BACKGROUND_UNTIL" "$out" && break; sleep 0.2; done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    cat "$out"
    rm -f "$out"
  ' _ "$rootfs" "$@"
}
export USERSPEC="$user"
in_image /usr/local/bin/apikey-operator --version
in_image /usr/local/bin/apikey-operator crd | grep -c '^kind: CustomResourceDefinition' | grep -qx 5
echo "crd: 5 CustomResourceDefinitions" >&2
# The credential store on a read-only root with /data and /tmp writable: it must bootstrap.
output="$(IN_BACKGROUND_UNTIL='credstore listening on' in_image \
  /usr/local/bin/apikey-operator credstore --listen 127.0.0.1:0 --data /data/store)"
address="$(sed -n 's/^credstore listening on //p' <<<"$output")"
[[ -n "$address" ]] || { echo "$output" >&2; echo "the credential store did not start" >&2; exit 1; }
echo "credstore: listened on $address as $user on a read-only root" >&2
buildah rmi -f "$image" >/dev/null
echo "runtime-smoke: ok"
