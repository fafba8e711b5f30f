# alive: is the job running? One method per profile (tmux, pgrep, pidfile,
# slurm). Prints alive=yes|no|pending|unknown|error, why=, pid= (the job's
# process), and for a live job its start (box clock) and thread count. Sets
# GP_JOB_PID for the cgroup section.

# Print the verdict of the alive check and keep it for later sections (the
# log scan reads less of a live job's log).
gp_say_alive() {
  GP_ALIVE_STATE=$1
  echo "alive=$1"
}

gp_is_shell() {
  case "$1" in bash|-bash|sh|-sh|dash|-dash|zsh|-zsh|fish|-fish|ksh|-ksh|mksh|-mksh|ash|-ash|csh|-csh|tcsh|-tcsh) return 0 ;; esac
  return 1
}
# Programs people leave open beside a job (a log tail, a GPU monitor, an
# editor): they keep a tmux session open but are not the job.
gp_is_viewer() {
  case "$1" in watch|top|htop|btop|nvtop|gpustat|nvitop|nvidia-smi|tensorboard|less|more|most|tail|man|vi|vim|nvim|nano|emacs|tmux*|screen|ssh|mosh-client|gpupatrol) return 0 ;; esac
  return 1
}
# Does the shell $1 run a script or a -c command (rather than wait at a prompt)?
gp_shell_runs_something() {
  gp_a=$(tr '\000' '\n' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  gp_first=1
  while IFS= read -r gp_w; do
    if [ "$gp_first" = 1 ]; then gp_first=0; continue; fi
    # `busybox sh …`: the applet's name is no argument
    if [ "$gp_first" = 0 ]; then
      gp_first=2
      case "${gp_a%%
*}" in busybox | */busybox) case "$gp_w" in sh | ash | hush) continue ;; esac ;; esac
    fi
    case "$gp_w" in
      --*) ;;
      -*c*) return 0 ;;
      -*) ;;
      ?*) return 0 ;;
    esac
  done <<GP_EOF
$gp_a
GP_EOF
  return 1
}
# The job under a tmux pane's process $1, in gp_job: the first process that is
# neither a shell waiting (at its prompt, in `read`, after its command ended)
# nor a viewer. Returns 1 when there is none (the shell outlived the job).
# Is process $1 (a `sleep`) `sleep infinity` / `sleep inf`?
gp_sleeps_forever() {
  gp_sa=$(tr '\000' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
  # infinity, or an hour and more (`sleep 86400`, `sleep 1d`): a job's own
  # loop polls more often than that
  for gp_w in $gp_sa; do
    case "$gp_w" in
      infinity | inf | *[0-9]d | *[0-9]h) return 0 ;;
      *[!0-9]*) ;;
      *) [ "$gp_w" -ge 3600 ] 2>/dev/null && return 0 ;;
    esac
  done
  return 1
}
# Does process $1 only keep a pane open: `sleep infinity`, or an
# interactive shell (one that runs no script or -c command)?
gp_keeps_open() {
  gp_stat "$1" || return 1
  gp_busybox_shell "$1"
  if [ "$gp_st_comm" = sleep ]; then gp_sleeps_forever "$1"; return; fi
  gp_is_shell "$gp_st_comm" || return 1
  ! gp_shell_runs_something "$1"
}
# A `busybox sh` (its process name is busybox's): the shell it runs, in
# gp_st_comm, so that it is told apart like any shell.
gp_busybox_shell() {
  [ "$gp_st_comm" = busybox ] || return 0
  gp_bb=$(tr '\000' '\n' <"/proc/$1/cmdline" 2>/dev/null | head -n 2)
  case "${gp_bb#*
}" in sh | ash | hush) gp_st_comm=${gp_bb#*
} ;; esac
}
# The live children of $1 in gp_kids: a zombie is a command that ended (dash
# does not reap a finished background job while it waits at its prompt).
gp_live_children() {
  gp_children "$1"
  gp_lk=""; gp_zkids=""
  for gp_k in $gp_kids; do
    if gp_stat "$gp_k"; then
      if [ "$gp_st_state" = Z ]; then gp_zkids="$gp_zkids $gp_k"; else gp_lk="$gp_lk $gp_k"; fi
    fi
  done
  gp_kids=$gp_lk
}
# $gp_p ended while being read: walk the pane's tree again, as it is now;
# after three walks that each met a command ending under a shell, that
# shell, which kept starting commands, is the job (0, in gp_job).
gp_recheck() {
  [ -n "$gp_parent" ] || return 1
  if [ "$gp_rechecks" -ge 3 ]; then gp_job=$gp_parent; return 0; fi
  gp_rechecks=$((gp_rechecks + 1)); gp_queue="$gp_root:"; gp_seen=0
  return 1
}
gp_pane_job() {
  gp_job=""; gp_root=$1; gp_queue="$1:"; gp_seen=0; gp_rechecks=0
  while [ -n "$gp_queue" ] && [ "$gp_seen" -lt 64 ]; do
    # shellcheck disable=SC2086
    set -- $gp_queue
    [ "$#" -gt 0 ] || break
    gp_p=${1%%:*}; gp_parent=${1#*:}; shift; gp_queue=$*
    gp_seen=$((gp_seen + 1))
    gp_st_state=""
    gp_stat "$gp_p" && gp_busybox_shell "$gp_p"
    if [ -z "$gp_st_state" ] || [ "$gp_st_state" = Z ]; then
      # a shell's command that ended since its children were read: the shell
      # is between two commands (a typed loop, `a && b`) or back at its
      # prompt — look at the shell again, as it is now; a shell that had a
      # new child every time it was looked at runs commands: the job
      gp_recheck && return 0
      continue
    fi
    gp_is_viewer "$gp_st_comm" && continue
    # `cmd; sleep infinity` and `exec sleep`: the pane kept open, not a job
    [ "$gp_seen" = 1 ] && [ "$gp_st_comm" = sleep ] && continue
    # `sleep infinity` anywhere keeps a pane open; it is no job
    [ "$gp_st_comm" = sleep ] && gp_sleeps_forever "$gp_p" && continue
    if ! gp_is_shell "$gp_st_comm"; then gp_job=$gp_p; return 0; fi
    gp_state=$gp_st_state
    gp_live_children "$gp_p"
    # Between two commands a shell has no child for a moment, and the state
    # read a moment before its children may still say it waits for the one
    # that just ended: asleep with no child is looked at three more times
    # before it counts as waiting (at a prompt, in `read`).
    gp_look=0; gp_waited=0
    while [ "$gp_look" -lt 3 ] && [ "$gp_state" = S ]; do
      case "$gp_kids" in *[0-9]*) break ;; esac
      gp_look=$((gp_look + 1))
      # only a zombie child: a shell about to reap it (busy), or one that
      # does not reap at its prompt (dash): give it a moment, once
      case "$gp_zkids:$gp_waited" in *[0-9]*:0) gp_waited=1; sleep 0.05 2>/dev/null ;; esac
      gp_stat "$gp_p" || { gp_state=gone; break; }
      gp_busybox_shell "$gp_p"
      # a shell's fork that has since exec'd its command: the command
      gp_is_shell "$gp_st_comm" || { gp_job=$gp_p; return 0; }
      gp_state=$gp_st_state
      gp_live_children "$gp_p"
    done
    if [ "$gp_state" = gone ] || [ "$gp_state" = Z ]; then
      # it ended while being read (a fork of its shell that ran a command):
      # the shell again
      gp_recheck && return 0
      continue
    fi
    case "$gp_kids" in
      *[0-9]*) ;;
      # no child, working (a loop's builtins between its commands): the job
      *) case "$gp_state" in R | D) gp_job=$gp_p; return 0 ;; esac ;;
    esac
    if gp_shell_runs_something "$gp_p"; then
      # a script or -c shell is the job while it runs a command or works;
      # with no child and asleep it waits (`read`, the end of `cmd; read x`)
      case "$gp_kids" in
        *[0-9]*)
          # ...unless all it runs now keeps the pane open (`cmd; sleep
          # infinity`, `cmd; bash` where the shell does not exec the last
          # command, as dash does not): look inside those
          gp_open=1
          for gp_k in $gp_kids; do gp_keeps_open "$gp_k" || { gp_open=0; break; }; done
          if [ "$gp_open" = 0 ]; then gp_job=$gp_p; return 0; fi
          for gp_k in $gp_kids; do gp_queue="$gp_queue $gp_k:$gp_p"; done
          ;;
      esac
      continue
    fi
    for gp_k in $gp_kids; do gp_queue="$gp_queue $gp_k:$gp_p"; done
  done
  return 1
}

# tmux: every pane of every window of the session. Alive when some pane runs
# the job (not a shell waiting, not a viewer).
gp_alive_tmux() {
  if ! command -v tmux >/dev/null 2>&1; then gp_say_alive error; echo "why=tmux-not-installed"; return 0; fi
  # "=NAME:" is the exact session (tmux 3.3 resolves "=NAME" to nothing for panes)
  # under timeout: a wedged tmux server costs this section, not the probe
  gp_panes=$(${GP_TO:-} tmux list-panes -s -t "=$GP_ALIVE_ARG:" -F "#{pane_dead} #{pane_pid} #{session_created}" 2>&1)
  gp_rc=$?
  if [ "$gp_rc" != 0 ]; then
    case "$gp_rc:$gp_panes" in
      124:* | 137:* | 143:*) gp_say_alive error; echo "why=tmux-no-answer" ;;
      *"can't find"*|*"no server running"*|*"No such file or directory"*)
        gp_say_alive no; echo "why=no-tmux-session" ;;
      *) gp_say_alive error; echo "why=tmux-failed: $(printf "%s" "$gp_panes" | head -n 1 | tr -cd "A-Za-z0-9 ._:/-" | cut -c 1-120)" ;;
    esac
    return 0
  fi
  gp_np=0; gp_ndead=0; gp_found=""; gp_created=""
  while read -r gp_dead gp_pane gp_c; do
    [ -n "$gp_pane" ] || continue
    gp_np=$((gp_np + 1)); gp_created=$gp_c
    if [ "$gp_dead" = 1 ]; then gp_ndead=$((gp_ndead + 1)); continue; fi
    [ -n "$gp_found" ] && continue
    gp_pane_job "$gp_pane" && gp_found=$gp_job
  done <<GP_EOF
$gp_panes
GP_EOF
  echo "panes=$gp_np"
  echo "session_created=$gp_created"
  if [ -n "$gp_found" ]; then
    gp_stat "$gp_found" && echo "command=$gp_st_comm"
    GP_JOB_PID=$gp_found
    echo "pid=$gp_found"; gp_say_alive yes; return 0
  fi
  gp_say_alive no
  if [ "$gp_np" -gt 0 ] && [ "$gp_ndead" = "$gp_np" ]; then echo "why=tmux-pane-dead"; else echo "why=tmux-shell-idle"; fi
}

# Pids whose full command line matches the ERE $GP_ALIVE_ARG: pgrep -f, or
# /proc when there is no procps (slim images).
gp_match() {
  if [ "$GP_HAVE_PGREP" = 1 ]; then pgrep -f -- "$GP_ALIVE_ARG" 2>/dev/null; return 0; fi
  head -c 4096 /proc/[0-9]*/cmdline 2>/dev/null | tr "\\000" " " | awk "
    BEGIN { p = ENVIRON[\"GP_ALIVE_ARG\"] }
    /^==> \\/proc\\/[0-9]+\\/cmdline <==\$/ { split(\$0, w, \"/\"); pid = w[3]; next }
    # argv joined by spaces, as pgrep -f sees it: without the space the
    # final NUL became (a pattern ending in \$ matches)
    pid != \"\" { sub(/ \$/, \"\"); if (\$0 ~ p) print pid } { pid = \"\" }"
}
# Does process $1 carry GPUPATROL_PROBE=1 (another watcher's probe)?
gp_is_a_probe() {
  if [ "$GP_GREP_Z" = 1 ]; then
    grep -qxz "GPUPATROL_PROBE=1" "/proc/$1/environ" 2>/dev/null
  else
    tr "\\000" "\\n" <"/proc/$1/environ" 2>/dev/null | grep -qx "GPUPATROL_PROBE=1"
  fi
}

gp_alive_pgrep() {
  if [ "$GP_HAVE_PGREP" != 1 ] && [ ! -r /proc/self/cmdline ]; then
    gp_say_alive error; echo "why=no-pgrep-and-no-proc"; return 0
  fi
  [ "$GP_HAVE_PGREP" = 1 ] || echo "via=proc"
  gp_found=0; gp_first=""; gp_first_start=0
  for gp_p in $(gp_match); do
    # The pattern travels in the environment, not argv, but never count the
    # probe (or whatever launched it) as the job.
    gp_is_ours "$gp_p" && continue
    # gone since it was listed (a short-lived process), or a zombie
    gp_stat "$gp_p" || continue
    [ "$gp_st_state" = Z ] && continue
    # a tmux/screen server whose argv holds the command it started, a viewer
    # (`tail -f train.log`, `less`) naming the job: not the job
    case "$gp_st_comm" in tmux*|screen*|SCREEN*) continue ;; esac
    gp_is_viewer "$gp_st_comm" && continue
    gp_pst=$gp_st_start
    # another gpupatrol probe (a second watcher) is not the job either
    gp_is_a_probe "$gp_p" && continue
    gp_found=$((gp_found + 1))
    # the job is the earliest-started match (a launcher before its workers)
    if [ -z "$gp_first" ] || [ "${gp_pst:-0}" -lt "$gp_first_start" ]; then gp_first=$gp_p; gp_first_start=${gp_pst:-0}; fi
  done
  [ -n "$gp_first" ] && { echo "pid=$gp_first"; GP_JOB_PID=$gp_first; }
  echo "count=$gp_found"
  if [ "$gp_found" -gt 0 ]; then gp_say_alive yes; else gp_say_alive no; echo "why=no-matching-process"; fi
}

gp_alive_pidfile() {
  if [ ! -e "$GP_ALIVE_ARG" ]; then gp_say_alive no; echo "why=pidfile-missing"; return 0; fi
  gp_pl=""
  read -r gp_pl 2>/dev/null <"$GP_ALIVE_ARG" || :
  gp_pid=${gp_pl%%[!0-9]*}
  if [ -z "$gp_pid" ]; then gp_say_alive no; echo "why=pidfile-empty"; return 0; fi
  # `kill -0 0` would signal the probe's own process group
  if [ "$gp_pid" -lt 1 ]; then gp_say_alive no; echo "why=pidfile-not-a-pid"; return 0; fi
  echo "pid=$gp_pid"
  gp_st_state=""
  if gp_stat "$gp_pid" || kill -0 "$gp_pid" 2>/dev/null; then
    if [ "$gp_st_state" = Z ]; then gp_say_alive no; echo "why=process-zombie"; return 0; fi
    # A pidfile written before this boot (or, where /proc/uptime is the
    # container's, before this container started) names a pid of an earlier
    # life: the counter restarted, and whatever has that pid now is not the
    # job. Ten minutes' slack for a clock stepped at boot or a network mount's.
    if [ -n "${GP_UPTIME_CS:-}" ] && gp_fstat "$GP_ALIVE_ARG" && [ -n "$gp_fmtime" ] \
      && [ "$gp_fmtime" -lt $((GP_NOW - GP_UPTIME_CS / 100 - 600)) ]; then
      gp_say_alive no; echo "why=pidfile-from-before-the-last-boot"; return 0
    fi
    GP_JOB_PID=$gp_pid
    gp_say_alive yes
  else
    gp_say_alive no; echo "why=process-gone"
  fi
}

# The last state of a job that left the queue: gp_final_id, _state, _exit,
# _reason (empty when nothing remembers it). $1 is a job id or name; with $2,
# only a job named $2 counts (a chain's job id alone may name another job
# once the controller's ids restarted). scontrol first (kept for MinJobAge,
# needs no accounting), then sacct. Each under timeout: a busy controller
# costs this section, not the probe.
gp_slurm_final() {
  gp_j=""
  # by name, only this user's jobs: on a shared cluster "train" is anyone's
  gp_user
  if command -v scontrol >/dev/null 2>&1; then
    gp_j=$(gp_to scontrol -o show job 2>/dev/null | GP_WANT=$1 GP_NAME=${2:-} GP_ME=$gp_me awk "
      BEGIN { want = ENVIRON[\"GP_WANT\"]; need = ENVIRON[\"GP_NAME\"]; me = ENVIRON[\"GP_ME\"] }
      { id = \"\"; name = \"\"; st = \"\"; ec = \"\"; rs = \"\"
        for (i = 1; i <= NF; i++) {
          if (\$i ~ /^JobId=/) id = substr(\$i, 7)
          else if (\$i ~ /^JobName=/) name = substr(\$i, 9)
          else if (\$i ~ /^JobState=/) st = substr(\$i, 10)
          else if (\$i ~ /^ExitCode=/) ec = substr(\$i, 10)
          else if (\$i ~ /^Reason=/) rs = substr(\$i, 8)
          else if (\$i ~ /^UserId=/) { u = substr(\$i, 8); sub(/\\(.*/, \"\", u) } }
        byname = (id != want && name == want)
        if ((id == want || name == want) && (need == \"\" || name == need) && (!byname || me == \"\" || u == me)) last = id \" \" st \" \" ec \" \" rs }
      END { if (last != \"\") print last }")
  fi
  if [ -z "$gp_j" ] && command -v sacct >/dev/null 2>&1; then
    case "$1" in
      *[!0-9_+]*) gp_j=$(gp_to sacct -n -P -X ${gp_me:+-u "$gp_me"} --name "$1" -o JobID,JobName,State,ExitCode 2>/dev/null | tail -n 1) ;;
      *) gp_j=$(gp_to sacct -n -P -X -j "$1" -o JobID,JobName,State,ExitCode 2>/dev/null | tail -n 1) ;;
    esac
    # JobID|JobName|State|ExitCode; the name checked, then dropped
    gp_jn=${gp_j#*|}; gp_jn=${gp_jn%%|*}
    if [ -n "$gp_j" ] && [ -n "${2:-}" ] && [ "$gp_jn" != "$2" ]; then gp_j=""; fi
    [ -n "$gp_j" ] && gp_j=$(printf "%s" "$gp_j" | awk -F "|" "{ print \$1, \$3, \$4 }")
  fi
  # shellcheck disable=SC2086
  set -- $gp_j
  gp_final_id=${1:-}; gp_final_state=${2:-}; gp_final_exit=${3:-}; gp_final_reason=${4:-}
}

gp_alive_slurm() {
  if ! command -v squeue >/dev/null 2>&1; then gp_say_alive error; echo "why=squeue-not-installed"; return 0; fi
  case "$GP_ALIVE_ARG" in
    # a name, or an id: 97, an array task 97_3, a hetjob component 98+0
    *[!0-9_+]*) gp_user; gp_squeue -h -u "$gp_me" -n "$GP_ALIVE_ARG" -o "%i %T %M %D %A %r" ;;
    *) gp_squeue -h -j "$GP_ALIVE_ARG" -o "%i %T %M %D %A %r" ;;
  esac
  # a controller that does not answer is not "the job left the queue"
  if [ "$gp_qrc" = 2 ]; then gp_say_alive error; echo "why=squeue-failed: $gp_qerr"; return 0; fi
  if [ -n "$gp_q" ]; then
    # a running job of that name before a pending one (squeue lists the
    # pending first: a singleton's next, an array's waiting tasks)
    gp_pick=""
    while IFS= read -r gp_l; do
      [ -n "$gp_l" ] || continue
      [ -n "$gp_pick" ] || gp_pick=$gp_l
      case "$gp_l" in *" RUNNING "* | *" COMPLETING "*) gp_pick=$gp_l; break ;; esac
    done <<GP_EOF
$gp_q
GP_EOF
    # shellcheck disable=SC2086
    set -- $gp_pick
    echo "job_id=${1:-}"; echo "job_state=${2:-}"; echo "job_elapsed=${3:-}"; echo "job_nodes=${4:-}"; echo "job_reason=${6:-}"
    # for the node section: the job's allocation, by its own id (%A: an
    # array task's "97_3" is not an id srun takes)
    GP_SLURM_JOB=${5:-}; GP_SLURM_NNODES=${4:-}
    # held by the scheduler (queued, suspended, requeued): not running
    case "${2:-}" in
      PENDING | CONFIGURING | SUSPENDED | REQUEUED | REQUEUE_HOLD | REQUEUE_FED | RESV_DEL_HOLD | STOPPED) gp_say_alive pending ;;
      *) gp_say_alive yes ;;
    esac
    return 0
  fi
  gp_slurm_final "$GP_ALIVE_ARG"
  if [ -n "$gp_final_id" ]; then
    echo "final_id=$gp_final_id"; echo "final_state=$gp_final_state"
    echo "final_exit=$gp_final_exit"; echo "final_reason=$gp_final_reason"
  fi
  gp_say_alive no; echo "why=not-in-squeue"
}

gp_alive() {
  echo "method=$GP_ALIVE_KIND"
  GP_JOB_PID=""; GP_SLURM_JOB=""; GP_SLURM_NNODES=""
  case "$GP_ALIVE_KIND" in
    tmux) gp_alive_tmux ;;
    pgrep) gp_alive_pgrep ;;
    pidfile) gp_alive_pidfile ;;
    slurm) gp_alive_slurm ;;
    *) gp_say_alive unknown ;;
  esac
  [ -n "$GP_JOB_PID" ] || return 0
  # when the job started (the box's clock) and the threads of its tree
  gp_started "$GP_JOB_PID"
  [ -n "$gp_started_at" ] && echo "started=$gp_started_at"
  gp_tree_threads "$GP_JOB_PID"
  [ "$gp_seen" -gt 0 ] && echo "threads=$gp_threads"
  return 0
}
