# Sourced by tests/vm/*.sh, which run inside the VM (scripts/vm test) as root
# against the guest's containerd. Prints TAP-like lines: `ok - …`,
# `not ok - …` (with `#` detail lines); `# …` lines are notes and timings.
set -uo pipefail

NS=wasmlet-vm
REPO=${WASMLET_VM_REPO:-/opt/wasmlet/repo}
SHIM_DIR=/opt/wasmlet/bin
WASM_DIR=$REPO/target/guests/wasm32-wasip1/release
WORK=/var/tmp/wasmlet-vm-tests
BUSYBOX_IMAGE=wasmlet.local/busybox:vm
WASM_IMAGE=wasmlet.local/guests:vm
WASMLET_RUNTIME=io.containerd.wasmlet.v1
export CONTAINERD_SUPPRESS_DEPRECATION_WARNINGS=1
mkdir -p "$WORK"

passed=0 failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
# not_ok TITLE [DETAIL LINE...]
not_ok() {
  echo "not ok - $1"; shift
  local l
  for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done
  failed=$((failed + 1))
}
note() { echo "# $*"; }
finish() {
  echo "# $(basename "$0"): $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}

c() { ctr -n "$NS" "$@"; }
now_ms() { date +%s%3N; }

# wait_for SECONDS CMD...: until CMD succeeds (0) or time runs out (1).
wait_for() {
  local deadline=$(($(date +%s) + $1)); shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

task_status() { c task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'; }
task_pid() { c task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $2 }'; }
is_running() { [ "$(task_status "$1")" = RUNNING ]; }
gone() { [ ! -e "$1" ]; }

# Remove a container and its task whatever state they are in.
remove_container() {
  local id=$1
  if c task ls -q 2>/dev/null | grep -qx "$id"; then
    c task kill -s SIGKILL "$id" >/dev/null 2>&1
    wait_for 30 sh -c "[ \"\$(ctr -n $NS task ls 2>/dev/null | awk '\$1 == \"$id\" { print \$3 }')\" != RUNNING ]"
    c task rm -f "$id" >/dev/null 2>&1
  fi
  c container rm "$id" >/dev/null 2>&1
  return 0
}

# The systemd scope runc's systemd driver makes for `--cgroup SLICE:PREFIX:NAME`.
scope_dir() { echo "/sys/fs/cgroup/system.slice/wasmlet-$1.scope"; }
# The cgroup a process is in (cgroup v2), as a /sys/fs/cgroup path.
cgroup_of() { echo "/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$1/cgroup" 2>/dev/null)"; }
# Every cgroup named after the container (scope or cgroupfs-style), for leak checks.
leftovers() {
  find /sys/fs/cgroup -maxdepth 3 -type d \( -name "*-$1.scope" -o -name "*wasmlet:$1" -o -name "$1" \) 2>/dev/null
}

none_left() { [ -z "$(leftovers "$1")" ]; }
# no_leftovers ID TITLE: ok when no cgroup named after ID is left (waits up
# to 15 s); otherwise not ok with each leftover's state, then removes the
# empty leftovers so later cases start clean.
no_leftovers() {
  local id=$1 title=$2 l details=()
  if wait_for 15 none_left "$id"; then
    ok "$title: no cgroup left"
    return
  fi
  for l in $(leftovers "$id"); do
    details+=("$l: $(tr '\n' ' ' < "$l/cgroup.events" 2>/dev/null)procs=[$(tr '\n' ' ' < "$l/cgroup.procs" 2>/dev/null)]")
  done
  details+=(${LEAK_HINT:+"$LEAK_HINT"})
  not_ok "$title: cgroup left behind" "${details[@]}"
  for l in $(leftovers "$id"); do rmdir "$l" 2>/dev/null; done
}

# check_file PATH EXPECTED LABEL: compare a cgroup file's content.
check_file() {
  local got
  got=$(cat "$1" 2>/dev/null) || got="(missing)"
  if [ "$got" = "$2" ]; then return 0; fi
  mismatch+=("$3: $1 is '$got', expected '$2'")
  return 1
}

# --- OCI image archives made with shell tools ------------------------------

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
# make_oci_archive NAME ROOTFS_DIR OUT ENTRYPOINT_JSON: a one-layer linux/amd64
# image (uncompressed tar layer) as an OCI layout in a tar, for `ctr images import`.
make_oci_archive() {
  local name=$1 rootfs=$2 out=$3 entry=$4 d layer cfg man lsha lsize csha csize msha msize
  d=$(mktemp -d "$WORK/oci.XXXXXX")
  mkdir -p "$d/blobs/sha256"
  tar --numeric-owner --owner=0 --group=0 --sort=name --mtime=@0 -C "$rootfs" -cf "$d/layer.tar" .
  lsha=$(sha256_of "$d/layer.tar"); lsize=$(stat -c %s "$d/layer.tar")
  mv "$d/layer.tar" "$d/blobs/sha256/$lsha"
  cfg=$(printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' "$entry" "$lsha")
  printf '%s' "$cfg" > "$d/config.json"
  csha=$(sha256_of "$d/config.json"); csize=$(stat -c %s "$d/config.json")
  mv "$d/config.json" "$d/blobs/sha256/$csha"
  man=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' "$csha" "$csize" "$lsha" "$lsize")
  printf '%s' "$man" > "$d/manifest.json"
  msha=$(sha256_of "$d/manifest.json"); msize=$(stat -c %s "$d/manifest.json")
  mv "$d/manifest.json" "$d/blobs/sha256/$msha"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"platform":{"architecture":"amd64","os":"linux"},"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$msha" "$msize" "$name" "${name##*:}" > "$d/index.json"
  printf '{"imageLayoutVersion":"1.0.0"}' > "$d/oci-layout"
  tar -C "$d" -cf "$out" oci-layout index.json blobs
  rm -rf "$d"
}

have_image() { c images ls -q 2>/dev/null | grep -qx "$1"; }
import_archive() {
  local out
  out=$(c images import "$1" 2>&1) || { echo "ctr images import $1: $out" >&2; return 1; }
}

# busybox (the guest's busybox-static) with the applets the tests use.
BUSYBOX_ROOTFS=$WORK/busybox-rootfs
busybox_rootfs() {
  [ -x "$BUSYBOX_ROOTFS/bin/busybox" ] && return 0
  local r=$BUSYBOX_ROOTFS a
  rm -rf "$r"; mkdir -p "$r/bin" "$r/tmp" "$r/proc" "$r/sys" "$r/dev" "$r/run"
  cp "$(command -v busybox)" "$r/bin/busybox"
  for a in sh sleep true cat echo dd ls head; do ln -s busybox "$r/bin/$a"; done
}
ensure_busybox_image() {
  busybox_rootfs || return 1
  have_image "$BUSYBOX_IMAGE" && return 0
  make_oci_archive "$BUSYBOX_IMAGE" "$BUSYBOX_ROOTFS" "$WORK/busybox.tar" '["/bin/sh"]' && import_archive "$WORK/busybox.tar"
}

# A plain image whose rootfs holds the repo's built Wasm guests at /NAME.wasm.
WASM_GUESTS="hello sleep memhog"
WASM_ROOTFS=$WORK/wasm-rootfs
wasm_rootfs() {
  local r=$WASM_ROOTFS g
  rm -rf "$r"; mkdir -p "$r"
  for g in $WASM_GUESTS; do
    [ -f "$WASM_DIR/$g.wasm" ] || { echo "missing $WASM_DIR/$g.wasm (build the guests on the host: scripts/build-guests)" >&2; return 1; }
    cp "$WASM_DIR/$g.wasm" "$r/$g.wasm"
  done
}
ensure_wasm_image() {
  wasm_rootfs || return 1
  have_image "$WASM_IMAGE" && return 0
  make_oci_archive "$WASM_IMAGE" "$WASM_ROOTFS" "$WORK/wasm.tar" '["/hello.wasm"]' && import_archive "$WORK/wasm.tar"
}

# spec_with_limits OUT ID ROOTFS ARGS_JSON: ctr's default spec with the args,
# an absolute root, cgroupsPath system.slice:wasmlet:ID and memory, cpu and
# pids limits. ctr 2.1's `run` has no pids flag (and no `task update`), so a
# pids limit needs `ctr run --config`.
PIDS_LIMIT=64
spec_with_limits() {
  local out=$1 id=$2 rootfs=$3 args=$4
  ctr oci spec | sed \
    -e '0,/"process": {/s||"process": {\n        "args": '"$args"',\n        "env": ["PATH=/bin"],\n        "terminal": false,|' \
    -e 's|"path": "rootfs"|"path": "'"$rootfs"'"|' \
    -e 's|"cgroupsPath": "[^"]*"|"cgroupsPath": "system.slice:wasmlet:'"$id"'"|' \
    -e '0,/"resources": {/s||"resources": {\n            "memory": {"limit": '"$MEM_LIMIT"'},\n            "cpu": {"quota": 50000, "period": 100000},\n            "pids": {"limit": '"$PIDS_LIMIT"'},|' \
    > "$out"
  grep -q '"pids": {"limit"' "$out" && grep -q "system.slice:wasmlet:$id" "$out"
}

# --- the cgroup checks shared by the runc and wasmlet tests ----------------

MEM_LIMIT=67108864          # --memory-limit 64 MiB
CPUS=0.5                    # --cpus 0.5 -> cpu.max "50000 100000"
CPU_MAX="50000 100000"

# check_limits ID PID: the container's systemd scope exists, holds PID and
# carries the limits. Fills the array `mismatch` (empty when all is well).
check_limits() {
  local id=$1 pid=$2 scope actual
  scope=$(scope_dir "$id")
  mismatch=()
  if [ ! -d "$scope" ]; then
    actual=$(cgroup_of "$pid")
    mismatch+=("no systemd scope $scope")
    mismatch+=("task pid $pid is in $actual")
    [ -d "$actual" ] && mismatch+=("  there: memory.max=$(cat "$actual/memory.max" 2>/dev/null) cpu.max=$(cat "$actual/cpu.max" 2>/dev/null) pids.max=$(cat "$actual/pids.max" 2>/dev/null)")
    return 1
  fi
  check_file "$scope/memory.max" "$MEM_LIMIT" memory
  check_file "$scope/cpu.max" "$CPU_MAX" cpu
  if [ -n "${WANT_PIDS:-}" ]; then check_file "$scope/pids.max" "$PIDS_LIMIT" pids; fi
  grep -qx "$pid" "$scope/cgroup.procs" 2>/dev/null || mismatch+=("pid $pid not in $scope/cgroup.procs ($(tr '\n' ' ' < "$scope/cgroup.procs" 2>/dev/null))")
  systemctl is-active --quiet "wasmlet-$id.scope" || mismatch+=("systemctl: wasmlet-$id.scope is $(systemctl is-active "wasmlet-$id.scope" 2>&1)")
  [ ${#mismatch[@]} -eq 0 ]
}

# limits_case TITLE ID CTR_RUN_ARGS...: start a long-running container with
# `ctr run -d ARGS`, check its scope (check_limits), remove it, check nothing
# is left. WANT_PIDS=1 also checks pids.max.
limits_case() {
  local title=$1 id=$2 t out rc pid; shift 2
  remove_container "$id"
  t=$(now_ms)
  out=$(c run -d "$@" 2>&1); rc=$?
  if [ "$rc" = 0 ] && wait_for 60 is_running "$id"; then
    note "time: ctr run -d to RUNNING ($title): $(( $(now_ms) - t )) ms"
    pid=$(task_pid "$id")
    if check_limits "$id" "$pid"; then
      ok "$title: scope $(scope_dir "$id") holds the task, memory.max=$MEM_LIMIT cpu.max='$CPU_MAX'${WANT_PIDS:+ pids.max=$PIDS_LIMIT}"
    else
      not_ok "$title: limits in the systemd scope $(scope_dir "$id")" "${mismatch[@]}" ${EXPLAIN:+"$EXPLAIN"}
    fi
    [ -z "${WANT_PIDS:-}" ] && [ -d "$(scope_dir "$id")" ] && note "pids.max without a pids limit: $(cat "$(scope_dir "$id")/pids.max") (systemd's DefaultTasksMax)"
  else
    not_ok "$title: ctr run -d" "exit $rc: $out" ${RUN_HINT:+"$RUN_HINT"}
  fi
  remove_container "$id"
  no_leftovers "$id" "$title, container removed"
}
