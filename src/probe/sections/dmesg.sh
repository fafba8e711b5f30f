# dmesg: the kernel's OOM-killer lines and the GPU driver's hardware errors
# (NVRM Xid, ECC, a GPU fallen off the bus), when the kernel log is readable
# (triage only).
gp_dmesg() {
  dmesg 2>/dev/null | tail -n 5000 | awk "/Out of memory|oom-kill|oom_reaper|Killed process|Memory cgroup out of memory|NVRM: Xid|fallen off the bus|uncorrectable ECC/ { print }" | tail -n 8
  return 0
}
