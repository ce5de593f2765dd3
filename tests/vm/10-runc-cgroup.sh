#!/usr/bin/env bash
# runc (containerd's io.containerd.runc.v2 with --runc-systemd-cgroup): the
# reference the wasmlet variants are held to. `--cgroup system.slice:wasmlet:ID`
# must become the scope system.slice/wasmlet-ID.scope with the limits set,
# an over-limit process exits 137, and nothing is left after the container.
. "$(dirname "$0")/lib/common.sh"
RUNC=(--runc-systemd-cgroup)

if err=$(ensure_busybox_image 2>&1); then ok "busybox image $BUSYBOX_IMAGE"; else not_ok "busybox image" "$err"; finish; exit; fi

# A plain run, timed.
id=runc-hello; remove_container "$id"
t=$(now_ms)
out=$(c run --rm "${RUNC[@]}" --cgroup "system.slice:wasmlet:$id" "$BUSYBOX_IMAGE" "$id" /bin/echo hello 2>&1); rc=$?
note "time: ctr run --rm busybox echo (runc, systemd cgroup): $(( $(now_ms) - t )) ms"
if [ "$rc" = 0 ] && [ "$out" = hello ]; then ok "runc: ctr run --rm prints the output, exits 0"; else not_ok "runc: ctr run --rm busybox echo" "exit $rc: $out"; fi
no_leftovers "$id" "runc: ctr run --rm"

# --memory-limit and --cpus land in the systemd scope.
id=runc-limits
limits_case "runc --memory-limit --cpus" "$id" "${RUNC[@]}" --cgroup "system.slice:wasmlet:$id" \
  --memory-limit "$MEM_LIMIT" --cpus "$CPUS" "$BUSYBOX_IMAGE" "$id" /bin/sleep 600

# pids too (ctr has no pids flag: the same limits from a --config spec).
id=runc-spec
if spec_with_limits "$WORK/$id.json" "$id" "$BUSYBOX_ROOTFS" '["/bin/sleep", "600"]'; then
  WANT_PIDS=1 limits_case "runc --config spec (memory, cpu, pids)" "$id" "${RUNC[@]}" --cgroup "system.slice:wasmlet:$id" \
    --config "$WORK/$id.json" "$id"
else
  not_ok "runc: writing a spec with limits" "$(head -c 600 "$WORK/$id.json")"
fi

# Over the memory limit: the kernel's OOM killer, exit 137.
id=runc-oom; remove_container "$id"
out=$(c run --rm "${RUNC[@]}" --cgroup "system.slice:wasmlet:$id" --memory-limit 33554432 "$BUSYBOX_IMAGE" "$id" \
  /bin/dd if=/dev/zero of=/dev/null bs=64M count=1 2>&1); rc=$?
if [ "$rc" = 137 ]; then ok "runc: over-limit process (64 MiB buffer, 32 MiB limit) exits 137"; else not_ok "runc: over-limit exits 137" "exit $rc: $out"; fi
remove_container "$id"
no_leftovers "$id" "runc: OOM-killed container"

finish
