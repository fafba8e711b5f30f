# cgroup: the job's memory (v2, v1 fallback) against its nearest limit, the
# oom_kill counter, the CPU quota, the host's memory, load and CPUs — read
# with builtins, for the job's own cgroup when its pid is known.

# Inside a Slurm job step, the job's level of the cgroup path (…/job_ID),
# where its memory and OOM kills are counted, not the step's or the task's.
gp_cg_job() {
  [ -n "${GP_CG_JOB:-}" ] || return 0
  case "$gp_rel/" in
    */job_"$GP_CG_JOB"/*) gp_rel=${gp_rel%%/job_"$GP_CG_JOB"/*}/job_$GP_CG_JOB; echo "cg_level=job" ;;
  esac
}

gp_cgroup() {
  gp_pid=${GP_JOB_PID:-}
  [ -n "$gp_pid" ] && [ -r "/proc/$gp_pid/cgroup" ] || gp_pid=$$
  echo "cg_pid=$gp_pid"
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo "cg_version=2"
    gp_rel=""
    while IFS= read -r gp_l; do case "$gp_l" in 0::*) gp_rel=${gp_l#0::}; break ;; esac; done <"/proc/$gp_pid/cgroup" 2>/dev/null
    gp_cg_job
    gp_d=/sys/fs/cgroup$gp_rel
    while [ "$gp_d" != /sys/fs/cgroup ] && [ ! -f "$gp_d/memory.current" ]; do gp_d=${gp_d%/*}; done
    if [ -f "$gp_d/memory.current" ]; then
      gp_first_line "$gp_d/memory.current"; echo "cg_current=$gp_fl"
      gp_keyval "$gp_d/memory.stat" inactive_file; echo "cg_inactive_file=$gp_kv"
      gp_keyval "$gp_d/memory.events" oom_kill; echo "cg_oom_kill=$gp_kv"
      gp_m=max; gp_e=$gp_d
      while :; do
        gp_first_line "$gp_e/memory.max"
        if [ -n "$gp_fl" ] && [ "$gp_fl" != max ]; then gp_m=$gp_fl; break; fi
        [ "$gp_e" = /sys/fs/cgroup ] && break
        gp_e=${gp_e%/*}; [ -n "$gp_e" ] || break
      done
      echo "cg_max=$gp_m"
      gp_first_line "$gp_d/cpu.max"
      [ -n "$gp_fl" ] && echo "cg_cpu_max=$gp_fl"
    fi
  elif [ -f /sys/fs/cgroup/memory/memory.usage_in_bytes ]; then
    echo "cg_version=1"
    gp_rel=""
    while IFS=: read -r _ gp_ctl gp_path; do
      case ",$gp_ctl," in *,memory,*) gp_rel=$gp_path; break ;; esac
    done <"/proc/$gp_pid/cgroup" 2>/dev/null
    gp_cg_job
    gp_d=/sys/fs/cgroup/memory$gp_rel
    # inside a container the host path is not visible: its root is ours
    [ -f "$gp_d/memory.usage_in_bytes" ] || gp_d=/sys/fs/cgroup/memory
    gp_first_line "$gp_d/memory.usage_in_bytes"; echo "cg_current=$gp_fl"
    gp_first_line "$gp_d/memory.limit_in_bytes"; echo "cg_max=$gp_fl"
    gp_keyval "$gp_d/memory.stat" total_inactive_file; echo "cg_inactive_file=$gp_kv"
    gp_keyval "$gp_d/memory.oom_control" oom_kill; echo "cg_oom_kill=$gp_kv"
  fi
  gp_keyval /proc/meminfo MemTotal:; echo "mem_total_kb=$gp_kv"
  gp_keyval /proc/meminfo MemAvailable:; echo "mem_avail_kb=$gp_kv"
  gp_la1=""; gp_la2=""; gp_la3=""
  read -r gp_la1 gp_la2 gp_la3 _ 2>/dev/null </proc/loadavg || :
  echo "loadavg=$gp_la1 $gp_la2 $gp_la3"
  # CPUs online ("0-15,32-47"), counted without nproc
  gp_first_line /sys/devices/system/cpu/online
  gp_ncpu=0
  gp_ifs=$IFS; IFS=,
  for gp_r in $gp_fl; do
    case "$gp_r" in
      *-*) gp_ncpu=$((gp_ncpu + ${gp_r#*-} - ${gp_r%-*} + 1)) ;;
      [0-9]*) gp_ncpu=$((gp_ncpu + 1)) ;;
    esac
  done
  IFS=$gp_ifs
  [ "$gp_ncpu" -gt 0 ] && echo "nproc=$gp_ncpu"
  return 0
}
