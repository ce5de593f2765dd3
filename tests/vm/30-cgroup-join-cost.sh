#!/usr/bin/env bash
# What placing a process in a cgroup costs on cgroup v2 (the shim joins its
# container's cgroup at start): a cgroup.procs write after fork vs
# clone3(CLONE_INTO_CGROUP) vs fork alone, and a systemd transient scope
# (D-Bus StartTransientUnit, what the systemd driver does) via systemd-run.
# Figures are TCG-emulated (15-30x slower than the host): compare them with
# each other only.
. "$(dirname "$0")/lib/common.sh"
bench=$SHIM_DIR/cgroup-join
if [ ! -x "$bench" ]; then
  not_ok "cgroup-join helper in $SHIM_DIR" "scripts/vm test builds it from examples/native/cgroup-join.c"
  finish; exit
fi
if out=$("$bench" /sys/fs/cgroup/wasmlet-join-bench 30 2>&1); then
  ok "cgroup v2 join paths measured (30 rounds each, medians)"
  while IFS= read -r line; do note "time: $line"; done <<< "$out"
else
  not_ok "cgroup-join" "$out"
fi
# A transient scope through systemd, as SystemdCgroup = true places a shim.
times=()
for i in $(seq 1 10); do
  t=$(now_ms)
  systemd-run --scope --quiet --unit "wasmlet-join-bench-$i" --slice system.slice true >/dev/null 2>&1 || { not_ok "systemd-run --scope" "failed"; finish; exit; }
  times+=($(( $(now_ms) - t )))
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n | sed -n 5p)
ok "systemd transient scope measured (10 rounds)"
note "time: systemd-run --scope true (StartTransientUnit + exec): median ${sorted} ms"
finish
