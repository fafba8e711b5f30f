# gpupatrol probe sections. Runs as `sh -c 'eval "$GP_LIB"' gp-probe SECTION`, each
# section under `timeout`, stdin from /dev/null. Every profile value arrives in
# an exported GP_* environment variable, never in this text and never in argv,
# so `pgrep -f PATTERN` cannot match the probe and a `|` is never a pipe.
# Output is KEY=VALUE lines of our own numbers, or TAG-prefixed lines when log
# text is carried (the tag is written by awk, so log text cannot forge one).

gp_mtime() { stat -c %Y -- "$1" 2>/dev/null || date -r "$1" +%s 2>/dev/null; }
gp_size() { stat -c %s -- "$1" 2>/dev/null || wc -c <"$1" 2>/dev/null; }
gp_inode() { stat -c %i -- "$1" 2>/dev/null || echo 0; }
gp_ppid() {
  gp_s=$(cat "/proc/$1/stat" 2>/dev/null) || { ps -o ppid= -p "$1" 2>/dev/null | tr -d " "; return; }
  gp_s=${gp_s##*) }
  # shellcheck disable=SC2086
  set -- $gp_s
  echo "$2"
}
# Is $1 the probe itself (a descendant of the probe's shell) or its parent?
gp_is_ours() {
  [ "$1" = "$GP_MAIN_PARENT" ] && return 0
  gp_x=$1; gp_n=0
  while [ -n "$gp_x" ] && [ "$gp_x" -gt 1 ] && [ "$gp_n" -lt 64 ]; do
    [ "$gp_x" = "$GP_MAIN_PID" ] && return 0
    gp_x=$(gp_ppid "$gp_x"); gp_n=$((gp_n + 1))
  done
  return 1
}
gp_etimes() { ps -o etimes= -p "$1" 2>/dev/null | tr -d " "; }
gp_is_shell() {
  case "$1" in bash|-bash|sh|-sh|dash|-dash|zsh|-zsh|fish|-fish|ksh|-ksh|ash|-ash) return 0 ;; esac
  return 1
}

gp_now() {
  echo "now=$(date +%s)"
  echo "timeout_cmd=${GP_HAVE_TIMEOUT:-0}"
}

gp_alive_tmux() {
  if ! command -v tmux >/dev/null 2>&1; then echo "alive=error"; echo "why=tmux-not-installed"; return 0; fi
  if ! tmux has-session -t "=$GP_ALIVE_ARG" 2>/dev/null; then echo "alive=no"; echo "why=no-tmux-session"; return 0; fi
  gp_pid=$(tmux display-message -p -t "=$GP_ALIVE_ARG" "#{pane_pid}" 2>/dev/null)
  gp_dead=$(tmux display-message -p -t "=$GP_ALIVE_ARG" "#{pane_dead}" 2>/dev/null)
  gp_created=$(tmux display-message -p -t "=$GP_ALIVE_ARG" "#{session_created}" 2>/dev/null)
  gp_cmd=$(tmux display-message -p -t "=$GP_ALIVE_ARG" "#{pane_current_command}" 2>/dev/null | tr -cd "A-Za-z0-9._-")
  echo "pid=$gp_pid"
  echo "started=$gp_created"
  echo "command=$gp_cmd"
  if [ "$gp_dead" = 1 ]; then echo "alive=no"; echo "why=tmux-pane-dead"; return 0; fi
  if gp_is_shell "$gp_cmd" && [ -n "$gp_pid" ] && command -v pgrep >/dev/null 2>&1 \
    && ! pgrep -P "$gp_pid" >/dev/null 2>&1; then
    echo "alive=no"; echo "why=tmux-shell-idle"; return 0
  fi
  echo "alive=yes"
}

gp_alive_pgrep() {
  if ! command -v pgrep >/dev/null 2>&1; then echo "alive=error"; echo "why=pgrep-not-installed"; return 0; fi
  gp_found=0
  for gp_p in $(pgrep -f -- "$GP_ALIVE_ARG" 2>/dev/null); do
    # The pattern travels in the environment, not argv, but never count the
    # probe (or whatever launched it) as the job.
    gp_is_ours "$gp_p" && continue
    # another gpupatrol probe (a second watcher) is not the job either
    grep -q -a "GPUPATROL_PROBE=1" "/proc/$gp_p/environ" 2>/dev/null && continue
    # gone since pgrep listed it (a short-lived process, maybe another probe's)
    [ -d "/proc/$gp_p" ] || kill -0 "$gp_p" 2>/dev/null || continue
    gp_found=$((gp_found + 1))
    if [ "$gp_found" = 1 ]; then echo "pid=$gp_p"; echo "elapsed=$(gp_etimes "$gp_p")"; fi
  done
  echo "count=$gp_found"
  if [ "$gp_found" -gt 0 ]; then echo "alive=yes"; else echo "alive=no"; echo "why=no-matching-process"; fi
}

gp_alive_pidfile() {
  if [ ! -e "$GP_ALIVE_ARG" ]; then echo "alive=no"; echo "why=pidfile-missing"; return 0; fi
  gp_pid=$(head -n 1 "$GP_ALIVE_ARG" 2>/dev/null | tr -cd "0-9")
  if [ -z "$gp_pid" ]; then echo "alive=no"; echo "why=pidfile-empty"; return 0; fi
  echo "pid=$gp_pid"
  if [ -d "/proc/$gp_pid" ] || kill -0 "$gp_pid" 2>/dev/null; then
    gp_st=$(sed -n "s/^State:[[:space:]]*\\([A-Z]\\).*/\\1/p" "/proc/$gp_pid/status" 2>/dev/null)
    if [ "$gp_st" = Z ]; then echo "alive=no"; echo "why=process-zombie"; return 0; fi
    echo "elapsed=$(gp_etimes "$gp_pid")"
    echo "alive=yes"
  else
    echo "alive=no"; echo "why=process-gone"
  fi
}

# The last state of a job that left the queue: "ID STATE EXITCODE REASON".
# scontrol first (kept for MinJobAge, needs no accounting), then sacct.
gp_slurm_final() {
  gp_j=""
  if command -v scontrol >/dev/null 2>&1; then
    gp_j=$(scontrol -o show job 2>/dev/null | awk -v want="$1" "
      { id = \"\"; name = \"\"; st = \"\"; ec = \"\"; rs = \"\"
        for (i = 1; i <= NF; i++) {
          if (\$i ~ /^JobId=/) id = substr(\$i, 7)
          else if (\$i ~ /^JobName=/) name = substr(\$i, 9)
          else if (\$i ~ /^JobState=/) st = substr(\$i, 10)
          else if (\$i ~ /^ExitCode=/) ec = substr(\$i, 10)
          else if (\$i ~ /^Reason=/) rs = substr(\$i, 8) }
        if (id == want || name == want) last = id \" \" st \" \" ec \" \" rs }
      END { if (last != \"\") print last }")
  fi
  if [ -z "$gp_j" ] && command -v sacct >/dev/null 2>&1; then
    case "$1" in
      *[!0-9_]*) gp_j=$(sacct -n -P -X --name "$1" -o JobID,State,ExitCode 2>/dev/null | tail -n 1 | tr "|" " ") ;;
      *) gp_j=$(sacct -n -P -X -j "$1" -o JobID,State,ExitCode 2>/dev/null | tail -n 1 | tr "|" " ") ;;
    esac
  fi
  printf "%s" "$gp_j" | head -n 1 | tr -cd "A-Za-z0-9_:. -"
}

gp_alive_slurm() {
  if ! command -v squeue >/dev/null 2>&1; then echo "alive=error"; echo "why=squeue-not-installed"; return 0; fi
  case "$GP_ALIVE_ARG" in
    *[!0-9_]*) gp_q=$(squeue -h -u "$(id -un)" -n "$GP_ALIVE_ARG" -o "%i %T %M %r" 2>/dev/null) ;;
    *) gp_q=$(squeue -h -j "$GP_ALIVE_ARG" -o "%i %T %M %r" 2>/dev/null) ;;
  esac
  if [ -n "$gp_q" ]; then
    printf "%s\n" "$gp_q" | head -n 5 | awk "{ printf \"slurm=%s %s %s %s\\n\", \$1, \$2, \$3, \$4 }"
    case "$gp_q" in
      *PENDING*|*CONFIGURING*) echo "alive=pending" ;;
      *) echo "alive=yes" ;;
    esac
    return 0
  fi
  gp_f=$(gp_slurm_final "$GP_ALIVE_ARG")
  [ -n "$gp_f" ] && echo "slurm_final=$gp_f"
  echo "alive=no"; echo "why=not-in-squeue"
}

gp_alive() {
  echo "method=$GP_ALIVE_KIND"
  case "$GP_ALIVE_KIND" in
    tmux) gp_out=$(gp_alive_tmux) ;;
    pgrep) gp_out=$(gp_alive_pgrep) ;;
    pidfile) gp_out=$(gp_alive_pidfile) ;;
    slurm) gp_out=$(gp_alive_slurm) ;;
    *) gp_out="alive=unknown" ;;
  esac
  printf "%s\n" "$gp_out"
  gp_pid=$(printf "%s\n" "$gp_out" | sed -n "s/^pid=\([0-9][0-9]*\)$/\1/p" | head -n 1)
  # threads of the job and of its children (a tmux pane's shell runs python)
  if [ -n "$gp_pid" ]; then
    gp_t=$(ps -o nlwp= -p "$gp_pid" 2>/dev/null | tr -d " ")
    for gp_c in $(pgrep -P "$gp_pid" 2>/dev/null); do
      gp_n=$(ps -o nlwp= -p "$gp_c" 2>/dev/null | tr -cd "0-9")
      gp_t=$((${gp_t:-0} + ${gp_n:-0}))
    done
    if [ -n "$gp_t" ]; then echo "threads=$gp_t"; fi
  fi
  return 0
}

# Kernel OOM-killer lines, when the kernel log is readable (triage only).
gp_dmesg() {
  dmesg 2>/dev/null | tail -n 5000 | awk "/Out of memory|oom-kill|oom_reaper|Killed process|Memory cgroup out of memory/ { print }" | tail -n 8
  return 0
}

gp_markers() {
  if [ -n "$GP_DONE_MARKER" ]; then
    if [ -e "$GP_DONE_MARKER" ]; then echo "done_marker=yes"; echo "done_marker_mtime=$(gp_mtime "$GP_DONE_MARKER")"
    else echo "done_marker=no"; fi
  fi
  if [ -n "$GP_MASTER_LOG" ] && [ -n "$GP_DONE_PATTERN" ]; then
    if [ ! -r "$GP_MASTER_LOG" ]; then echo "master=missing"; return 0; fi
    gp_size=$(gp_size "$GP_MASTER_LOG"); gp_ino=$(gp_inode "$GP_MASTER_LOG")
    gp_start=${GP_MASTER_OFFSET:-0}
    if [ "$gp_ino" != "${GP_MASTER_INODE:-0}" ] || [ "$gp_size" -lt "$gp_start" ]; then gp_start=0; fi
    if [ $((gp_size - gp_start)) -gt "$GP_SCAN_MAX" ]; then gp_start=$((gp_size - GP_SCAN_MAX)); fi
    echo "master_size=$gp_size"; echo "master_inode=$gp_ino"
    gp_hit=$(tail -c +$((gp_start + 1)) -- "$GP_MASTER_LOG" 2>/dev/null | head -c $((gp_size - gp_start)) \
      | awk "BEGIN { p = ENVIRON[\"GP_DONE_PATTERN\"]; h = 0 } index(\$0, p) { h = 1 } END { print h }")
    echo "master_done=$gp_hit"
  fi
}

# One pass over the part of the per-run log that is new since the last tick.
gp_log() {
  if [ -z "$GP_LOG" ]; then echo "m log=none"; return 0; fi
  if [ ! -e "$GP_LOG" ]; then echo "m log=missing"; return 0; fi
  if [ ! -r "$GP_LOG" ]; then echo "m log=unreadable"; return 0; fi
  gp_size=$(gp_size "$GP_LOG"); gp_ino=$(gp_inode "$GP_LOG"); gp_mt=$(gp_mtime "$GP_LOG")
  gp_start=${GP_LOG_OFFSET:-0}
  gp_rot=0
  if [ "$gp_ino" != "${GP_LOG_INODE:-0}" ] || [ "$gp_size" -lt "$gp_start" ]; then
    [ "$gp_start" -gt 0 ] && gp_rot=1
    gp_start=0
  fi
  gp_skip=0
  if [ $((gp_size - gp_start)) -gt "$GP_SCAN_MAX" ]; then gp_skip=$((gp_size - GP_SCAN_MAX - gp_start)); gp_start=$((gp_size - GP_SCAN_MAX)); fi
  gp_lastnl=1
  if [ "$gp_size" -gt 0 ]; then
    gp_lastnl=$(tail -c +"$gp_size" -- "$GP_LOG" 2>/dev/null | head -c 1 | od -An -c | tr -d " ")
    [ "$gp_lastnl" = "\\n" ] && gp_lastnl=1 || gp_lastnl=0
  fi
  echo "m log=present"
  echo "m size=$gp_size"; echo "m inode=$gp_ino"; echo "m mtime=$gp_mt"
  echo "m start=$gp_start"; echo "m rotated=$gp_rot"; echo "m skipped=$gp_skip"; echo "m ends_nl=$gp_lastnl"
  [ "$gp_size" -gt "$gp_start" ] || return 0
  tail -c +$((gp_start + 1)) -- "$GP_LOG" 2>/dev/null | head -c $((gp_size - gp_start)) | tr -d "\\000" | awk "
    BEGIN { nl = ENVIRON[\"GP_LIT_N\"] + 0; for (i = 1; i <= nl; i++) lit[i] = ENVIRON[\"GP_LIT_\" i]
            dp = ENVIRON[\"GP_DONE_PATTERN\"]; K = 20; T = 12; nc = 0; nt = 0 }
    {
      last = length(\$0)
      n = split(\$0, seg, \"\\r\")
      for (j = 1; j <= n; j++) {
        s = seg[j]; if (s == \"\") continue
        if (length(s) > 1000) s = substr(s, 1, 1000)
        if (dp != \"\" && index(s, dp)) { done = NR }
        for (i = 1; i <= nl; i++) if (index(s, lit[i])) { c[nc % K] = NR \" \" s; nc++; break }
        t[nt % T] = NR \" \" s; nt++
      }
    }
    END {
      for (i = (nc > K ? nc - K : 0); i < nc; i++) print \"c \" c[i % K]
      for (i = (nt > T ? nt - T : 0); i < nt; i++) print \"t \" t[i % T]
      print \"m lines=\" NR; print \"m last_len=\" last + 0; if (done) print \"m done_line=\" done
    }"
}

# The last stretch of the per-run log, independent of the offset: crash evidence.
gp_crash() {
  [ -n "$GP_LOG" ] && [ -r "$GP_LOG" ] || { echo "m crash=nolog"; return 0; }
  tail -c "$GP_CRASH_WINDOW" -- "$GP_LOG" 2>/dev/null | tr -d "\\000" | tr "\\r" "\\n" | awk "
    BEGIN { nl = ENVIRON[\"GP_LIT_N\"] + 0; for (i = 1; i <= nl; i++) lit[i] = ENVIRON[\"GP_LIT_\" i]
            S = 24; E = 15; ns = 0; ne = 0; nx = 0; lastprog = 0 }
    { line = \$0; if (length(line) > 400) line = substr(line, 1, 400) }
    { for (i = 1; i <= nl; i++) if (index(line, lit[i])) { lastprog = NR; break } }
    /Traceback \\(most recent call last\\)/ { nx = 0; x[nx++] = p2; x[nx++] = p1; inx = 40 }
    inx > 0 { x[nx++] = NR \" \" line; inx-- }
    /[Ee]rror|[Ee]xception|Killed|NCCL|[Nn]a[Nn]|[^a-z]inf[^a-z]|No space left|out of memory|OOM|Segmentation fault|core dumped|Aborted|[Tt]erminated|CANCELLED|PREEMPT|exit code|exitcode|SIG[A-Z]+/ {
      s[ns % S] = NR \" \" line; ns++ }
    { e[ne % E] = NR \" \" line; ne++; p2 = p1; p1 = NR \" \" line }
    END {
      for (i = 0; i < nx; i++) if (x[i] != \"\") print \"x \" x[i]
      for (i = (ns > S ? ns - S : 0); i < ns; i++) print \"s \" s[i % S]
      for (i = (ne > E ? ne - E : 0); i < ne; i++) print \"e \" e[i % E]
      print \"m lastprog=\" lastprog; print \"m lines=\" NR
    }"
}

# `gpupatrol wait`: the marker, and literal text in the per-run log from the
# waiter's own offset (it starts at 0: text already there counts).
gp_wait() {
  if [ -n "$GP_WAIT_MARKER" ]; then
    if [ -e "$GP_WAIT_MARKER" ]; then echo "marker=yes"; else echo "marker=no"; fi
  fi
  [ -n "$GP_WAIT_PATTERN" ] || return 0
  if [ -z "$GP_LOG" ] || [ ! -r "$GP_LOG" ]; then echo "pattern=nolog"; return 0; fi
  gp_size=$(gp_size "$GP_LOG"); gp_ino=$(gp_inode "$GP_LOG")
  gp_start=${GP_WAIT_OFFSET:-0}
  if [ "$gp_ino" != "${GP_WAIT_INODE:-0}" ] || [ "$gp_size" -lt "$gp_start" ]; then gp_start=0; fi
  if [ $((gp_size - gp_start)) -gt "$GP_SCAN_MAX" ]; then gp_start=$((gp_size - GP_SCAN_MAX)); fi
  gp_hit=$(tail -c +$((gp_start + 1)) -- "$GP_LOG" 2>/dev/null | head -c $((gp_size - gp_start)) | tr -d "\000" \
    | awk "BEGIN { p = ENVIRON[\"GP_WAIT_PATTERN\"]; h = 0 } index(\$0, p) { h = 1; exit } END { print h }")
  echo "pattern=$gp_hit"; echo "pattern_size=$gp_size"; echo "pattern_inode=$gp_ino"
}

# The on-box chain's sentinels: pid, DONE, and per stage status, heartbeat
# (its mtime, by the box's clock), pid alive, result (first 200 bytes).
gp_chain() {
  gp_d=$GP_CHAIN_DIR
  if [ ! -d "$gp_d" ]; then echo "chain=absent"; return 0; fi
  echo "chain=present"
  gp_alive=no
  if [ -f "$gp_d/chain.pid" ]; then
    gp_p=$(head -n 1 "$gp_d/chain.pid" 2>/dev/null | tr -cd "0-9")
    if [ -n "$gp_p" ] && kill -0 "$gp_p" 2>/dev/null; then gp_alive=yes; echo "chain_pid=$gp_p"; fi
  fi
  if [ -f "$gp_d/slurm.jobs" ]; then
    while read -r gp_id gp_stage; do
      gp_q=$(squeue -h -j "$gp_id" -o "%T %r" 2>/dev/null </dev/null | head -n 1 | tr -cd "A-Za-z0-9_ ")
      if [ -n "$gp_q" ]; then
        gp_alive=yes; echo "slurm_$gp_stage=$gp_id $gp_q"
      else
        gp_f=$(gp_slurm_final "$gp_id" </dev/null); echo "slurm_$gp_stage=$gp_f"
      fi
    done <"$gp_d/slurm.jobs"
  fi
  echo "chain_alive=$gp_alive"
  if [ -e "$gp_d/DONE" ]; then echo "done=yes"; else echo "done=no"; fi
  gp_i=1
  while [ "$gp_i" -le "${GP_STAGE_N:-0}" ]; do
    eval "gp_s=\${GP_STAGE_$gp_i}"
    gp_st=$(head -n 1 "$gp_d/$gp_s.status" 2>/dev/null | tr -cd "A-Z0-9 ")
    gp_hb=$(gp_mtime "$gp_d/$gp_s.heartbeat")
    gp_pa=no
    gp_p=$(head -n 1 "$gp_d/$gp_s.pid" 2>/dev/null | tr -cd "0-9")
    if [ -n "$gp_p" ] && kill -0 "$gp_p" 2>/dev/null; then gp_pa=yes; fi
    echo "stage_$gp_i=${gp_st:-NONE}|${gp_hb:-}|$gp_pa"
    gp_r=$(head -c 200 "$gp_d/$gp_s.result" 2>/dev/null | head -n 1 | tr -d "\r")
    echo "stage_${gp_i}_result=$gp_r"
    gp_i=$((gp_i + 1))
  done
  return 0
}

gp_artifacts() {
  gp_i=1
  while [ "$gp_i" -le "${GP_ART_N:-0}" ]; do
    eval "gp_p=\${GP_ART_$gp_i}"
    if [ -d "$gp_p" ]; then
      gp_c=$(ls -Aq -- "$gp_p" 2>/dev/null | wc -l | tr -d " ")
      gp_n=0
      if [ -n "$GP_LOG" ] && [ -e "$GP_LOG" ]; then
        gp_n=$(find "$gp_p" -mindepth 1 -maxdepth 1 -newer "$GP_LOG" 2>/dev/null | head -n 1 | wc -l | tr -d " ")
      fi
      echo "artifact_$gp_i=dir $gp_c $gp_n"
    elif [ -e "$gp_p" ]; then
      echo "artifact_$gp_i=file 1 0"
    else
      echo "artifact_$gp_i=missing 0 0"
    fi
    gp_i=$((gp_i + 1))
  done
}

gp_disk() {
  [ -n "$GP_DATA_MOUNT" ] || { echo "d none"; return 0; }
  gp_b=$(df -P -- "$GP_DATA_MOUNT" 2>/dev/null | tail -n 1)
  [ -n "$gp_b" ] && echo "b $gp_b"
  gp_i=$(df -P -i -- "$GP_DATA_MOUNT" 2>/dev/null | tail -n 1)
  [ -n "$gp_i" ] && echo "i $gp_i"
  [ -n "$gp_b" ] || { echo "d missing"; return 1; }
}

gp_gpu() {
  if ! command -v nvidia-smi >/dev/null 2>&1; then echo "absent"; return 0; fi
  gp_i=1
  while [ "$gp_i" -le "${GP_GPU_SAMPLES:-3}" ]; do
    gp_o=$(nvidia-smi --query-gpu=index,utilization.gpu,memory.used,memory.total,temperature.gpu --format=csv,noheader,nounits 2>&1)
    gp_rc=$?
    printf "%s\n" "$gp_o" | head -n 64 | sed "s/^/g $gp_i $gp_rc /"
    [ "$gp_i" -lt "${GP_GPU_SAMPLES:-3}" ] && sleep "${GP_GPU_INTERVAL:-1}"
    gp_i=$((gp_i + 1))
  done
}

gp_cgroup() {
  gp_pid=${GP_JOB_PID:-}
  [ -n "$gp_pid" ] && [ -r "/proc/$gp_pid/cgroup" ] || gp_pid=$$
  echo "cg_pid=$gp_pid"
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo "cg_version=2"
    gp_rel=$(sed -n "s/^0:://p" "/proc/$gp_pid/cgroup" 2>/dev/null | head -n 1)
    gp_d=/sys/fs/cgroup$gp_rel
    while [ "$gp_d" != /sys/fs/cgroup ] && [ ! -f "$gp_d/memory.current" ]; do gp_d=${gp_d%/*}; done
    if [ -f "$gp_d/memory.current" ]; then
      echo "cg_current=$(cat "$gp_d/memory.current" 2>/dev/null)"
      echo "cg_inactive_file=$(sed -n "s/^inactive_file //p" "$gp_d/memory.stat" 2>/dev/null)"
      echo "cg_oom_kill=$(sed -n "s/^oom_kill //p" "$gp_d/memory.events" 2>/dev/null)"
      gp_m=max; gp_e=$gp_d
      while :; do
        gp_v=$(cat "$gp_e/memory.max" 2>/dev/null)
        if [ -n "$gp_v" ] && [ "$gp_v" != max ]; then gp_m=$gp_v; break; fi
        [ "$gp_e" = /sys/fs/cgroup ] && break
        gp_e=${gp_e%/*}; [ -n "$gp_e" ] || break
      done
      echo "cg_max=$gp_m"
      gp_q=$(cat "$gp_d/cpu.max" 2>/dev/null)
      [ -n "$gp_q" ] && echo "cg_cpu_max=$gp_q"
    fi
  elif [ -f /sys/fs/cgroup/memory/memory.usage_in_bytes ]; then
    echo "cg_version=1"
    gp_rel=$(sed -n "s/^[0-9]*:[^:]*memory[^:]*:\(.*\)/\1/p" "/proc/$gp_pid/cgroup" 2>/dev/null | head -n 1)
    gp_d=/sys/fs/cgroup/memory$gp_rel
    # inside a container the host path is not visible: its root is ours
    [ -f "$gp_d/memory.usage_in_bytes" ] || gp_d=/sys/fs/cgroup/memory
    echo "cg_current=$(cat "$gp_d/memory.usage_in_bytes" 2>/dev/null)"
    echo "cg_max=$(cat "$gp_d/memory.limit_in_bytes" 2>/dev/null)"
    echo "cg_inactive_file=$(sed -n "s/^total_inactive_file //p" "$gp_d/memory.stat" 2>/dev/null)"
    echo "cg_oom_kill=$(sed -n "s/^oom_kill //p" "$gp_d/memory.oom_control" 2>/dev/null)"
  fi
  echo "mem_total_kb=$(sed -n "s/^MemTotal:[[:space:]]*\\([0-9]*\\).*/\\1/p" /proc/meminfo 2>/dev/null)"
  echo "mem_avail_kb=$(sed -n "s/^MemAvailable:[[:space:]]*\\([0-9]*\\).*/\\1/p" /proc/meminfo 2>/dev/null)"
  echo "loadavg=$(cut -d " " -f 1-3 /proc/loadavg 2>/dev/null)"
  echo "nproc=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null)"
}

case "$1" in
  now) gp_now ;;
  alive) gp_alive ;;
  markers) gp_markers ;;
  log) gp_log ;;
  crash) gp_crash ;;
  artifacts) gp_artifacts ;;
  wait) gp_wait ;;
  dmesg) gp_dmesg ;;
  chain) gp_chain ;;
  disk) gp_disk ;;
  gpu) gp_gpu ;;
  cgroup) gp_cgroup ;;
  *) echo "unknown section $1"; exit 2 ;;
esac
