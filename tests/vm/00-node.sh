#!/usr/bin/env bash
# The lab itself: cgroup v2 under systemd, containerd 2.x with runc's systemd
# driver, the 9p shares, the clock reset after the snapshot restore.
. "$(dirname "$0")/lib/common.sh"

fs=$(stat -fc %T /sys/fs/cgroup)
ctrls=$(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null)
if [ "$fs" = cgroup2fs ] && [[ " $ctrls " == *" memory "* && " $ctrls " == *" cpu "* && " $ctrls " == *" pids "* ]]; then
  ok "cgroup v2 at /sys/fs/cgroup with memory, cpu, pids ($ctrls)"
else
  not_ok "cgroup v2 at /sys/fs/cgroup" "fs type $fs, controllers: $ctrls"
fi

init=$(cat /proc/1/comm)
state=$(systemctl is-system-running 2>&1)
if [ "$init" = systemd ] && { [ "$state" = running ] || [ "$state" = degraded ]; }; then
  ok "systemd is PID 1 ($state)"
  [ "$state" = degraded ] && note "failed units: $(systemctl --failed --no-legend --plain | awk '{print $1}' | tr '\n' ' ')"
else
  not_ok "systemd is PID 1 and running" "PID 1 is $init, state $state"
fi

if systemctl is-active --quiet containerd; then
  ok "containerd active: $(containerd --version | awk '{print $3}'), runc $(runc --version | awk 'NR == 1 {print $3}')"
else
  not_ok "containerd active" "$(systemctl status containerd --no-pager 2>&1 | tail -n 15)"
fi

if grep -Eq '^[[:space:]]*SystemdCgroup[[:space:]]*=[[:space:]]*true' /etc/containerd/config.toml &&
   grep -q "io.containerd.wasmlet.v1" /etc/containerd/config.toml; then
  ok "containerd config: runc SystemdCgroup = true, runtime io.containerd.wasmlet.v1"
else
  not_ok "containerd config" "$(cat /etc/containerd/config.toml)"
fi

cpid=$(systemctl show -p MainPID --value containerd)
cpath=$(tr '\0' '\n' < "/proc/$cpid/environ" 2>/dev/null | sed -n 's/^PATH=//p')
if [ "${cpath%%:*}" = "$SHIM_DIR" ]; then
  ok "containerd's PATH starts with $SHIM_DIR"
else
  not_ok "containerd's PATH starts with $SHIM_DIR" "PATH=$cpath"
fi

if mountpoint -q "$SHIM_DIR" && mountpoint -q "$REPO" && [ -f "$REPO/scripts/vm" ]; then
  ok "9p shares mounted: $SHIM_DIR (host release dir), $REPO (checkout)"
else
  not_ok "9p shares mounted" "$(grep 9p /proc/mounts)"
fi

if [ -n "${WASMLET_VM_HOST_TIME:-}" ]; then
  skew=$(( $(date +%s) - WASMLET_VM_HOST_TIME ))
  if [ "${skew#-}" -le 60 ]; then ok "guest clock within 60 s of the host's (${skew} s)"; else not_ok "guest clock" "guest - host = $skew s"; fi
fi

finish
