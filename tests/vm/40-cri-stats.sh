#!/usr/bin/env bash
# CRI ContainerStats on cgroup v2 with the systemd driver, as kubelet's stats
# provider (kubectl top) asks for them: a Wasm container in a wasmlet pod
# whose cgroup parent is a systemd slice; the shim's
# io.containerd.cgroups.v2.Metrics, turned into ContainerStats by containerd's
# CRI, must match the container's scope (memory.current, cpu.stat).
. "$(dirname "$0")/lib/common.sh"
probe=$SHIM_DIR/wasmlet-vm-cri-stats
k() { ctr -n k8s.io "$@"; }

[ -x "$probe" ] || { not_ok "CRI probe $probe" "build the workspace on the host (cargo build --release --workspace --bins)"; finish; exit; }
wasm_rootfs && busybox_rootfs || { not_ok "guest files for the images"; finish; exit; }
# The CRI plugin wants its sandbox image even for pods whose sandbox is the
# shim's own holder process: a busybox image under the configured name.
sandbox=$(containerd config default 2>/dev/null | sed -n "s/^ *sandbox *= *['\"]\([^'\"]*\)['\"].*/\1/p" | head -n 1)
[ -n "$sandbox" ] || sandbox=registry.k8s.io/pause:3.10
make_oci_archive "$sandbox" "$BUSYBOX_ROOTFS" "$WORK/pause.tar" '["/bin/sleep","3600"]'
make_oci_archive "$WASM_IMAGE" "$WASM_ROOTFS" "$WORK/wasm-k8s.tar" '["/hello.wasm"]'
if out=$(k images import "$WORK/pause.tar" 2>&1) && out=$(k images import "$WORK/wasm-k8s.tar" 2>&1); then
  ok "images in k8s.io: sandbox $sandbox, $WASM_IMAGE"
else
  not_ok "importing images into k8s.io" "$out"; finish; exit
fi

limit=$MEM_LIMIT
if out=$("$probe" /run/containerd/containerd.sock wasmlet "$WASM_IMAGE" /sleep.wasm "$limit" 2>&1); then
  ok "CRI: pod (cgroup parent system.slice), container, ContainerStats answered"
else
  not_ok "CRI: ContainerStats of a wasmlet container" "$out" "$(journalctl -u containerd --no-pager -n 20 2>&1)"; finish; exit
fi
note "$(printf '%s' "$out" | tr '\n' ' ')"
val() { printf '%s\n' "$out" | sed -n "s/^$1=//p"; }
ws=$(val memory_working_set_bytes); usage=$(val memory_usage_bytes)
cpu0=$(val cpu_usage_core_nano_seconds); cpu1=$(val cpu_usage_core_nano_seconds_later)
# The shim's daemon and guest process: more than a MiB, less than the limit.
if [ "${ws:-0}" -gt 1048576 ] && [ "$ws" -lt "$limit" ] && [ "${usage:-0}" -ge "$ws" ]; then
  ok "CRI ContainerStats memory: working set $ws B, usage $usage B (the shim and guest process, under the $limit B limit)"
else
  not_ok "CRI ContainerStats memory" "working set ${ws:-none}, usage ${usage:-none} (limit $limit)"
fi
if [ "${cpu0:-0}" -gt 0 ] && [ "${cpu1:-0}" -ge "$cpu0" ]; then
  ok "CRI ContainerStats cpu: usage_core_nano_seconds $cpu0 then $cpu1 (monotonic)"
else
  not_ok "CRI ContainerStats cpu" "usage ${cpu0:-none} then ${cpu1:-none}"
fi
if [ "$(val memory_timestamp)" -gt 0 ] 2>/dev/null; then ok "CRI ContainerStats carry timestamps"; else not_ok "CRI ContainerStats timestamps" "$out"; fi
no_leftovers "$(val container)" "CRI: container removed with its pod"
no_leftovers "$(val pod)" "CRI: pod sandbox removed"
finish
