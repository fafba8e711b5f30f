# Processes from /proc, with shell builtins only where it can (no ps, no
# pgrep: slim images have neither), and the Slurm queue. Shared by the probe,
# the chain and its installer. Safe under `set -u`.
# Helpers report through gp_* variables; not every includer reads each one.
# shellcheck disable=SC2034

# "$@" under the section timeout ($GP_TO, when the box has `timeout`); 124
# when it overran, whichever timeout the box has: GNU's says 124 (137 after
# -k's KILL), busybox's passes on the TERM it sent (143). (Inside `$(...)` a
# function costs a fork of its own: the hot calls write `$GP_TO` and the
# same case inline.)
gp_to() {
  [ -n "${GP_TO:-}" ] || { "$@"; return; }
  $GP_TO "$@"
  gp_tr=$?
  case "$gp_tr" in 137 | 143) gp_tr=124 ;; esac
  return "$gp_tr"
}
# /proc/PID/stat without a fork: sets gp_st_comm, gp_st_state, gp_st_ppid,
# gp_st_threads and gp_st_start (clock ticks after boot). 1 when gone.
gp_stat() {
  gp_st_raw=""
  read -r gp_st_raw 2>/dev/null <"/proc/$1/stat" || [ -n "$gp_st_raw" ] || return 1
  gp_st_comm=${gp_st_raw#*\(}; gp_st_comm=${gp_st_comm%\) *}
  gp_st_raw=${gp_st_raw##*) }
  # shellcheck disable=SC2086
  set -- $gp_st_raw
  gp_st_state=${1:-}; gp_st_ppid=${2:-}; gp_st_threads=${18:-}; gp_st_start=${20:-}
}
# The children of $1 (all of its threads' children), in gp_kids.
gp_children() {
  gp_kids=""
  if [ -e "/proc/$1/task/$1/children" ]; then
    for gp_f in /proc/"$1"/task/*/children; do
      gp_l=""; read -r gp_l 2>/dev/null <"$gp_f" || :
      gp_kids="$gp_kids $gp_l"
    done
    return 0
  fi
  # kernels without CONFIG_PROC_CHILDREN: every process's parent
  for gp_f in /proc/[0-9]*; do
    gp_stat "${gp_f#/proc/}" && [ "$gp_st_ppid" = "$1" ] && gp_kids="$gp_kids ${gp_f#/proc/}"
  done
  return 0
}
# $1 and all of its descendants, in gp_tree (collected before anything is
# signalled: a killed parent's children are re-parented and lost to a later walk).
gp_tree_pids() {
  gp_tree=""; gp_tq=$1; gp_tn=0
  while [ -n "$gp_tq" ] && [ "$gp_tn" -lt 512 ]; do
    # shellcheck disable=SC2086
    set -- $gp_tq
    [ "$#" -gt 0 ] || break
    gp_tp=$1; shift; gp_tq=$*
    gp_stat "$gp_tp" || continue
    gp_tree="$gp_tree $gp_tp"; gp_tn=$((gp_tn + 1))
    gp_children "$gp_tp"
    gp_tq="$gp_tq $gp_kids"
  done
}
gp_boot_id() {
  gp_boot=""
  read -r gp_boot 2>/dev/null </proc/sys/kernel/random/boot_id || :
}
# "PID START BOOT": a process identified by more than its pid, so a pid that
# names another process after a reboot (or a wrap) is never taken for it.
gp_ident() {
  gp_stat "$1" || { echo "$1"; return 0; }
  gp_boot_id
  echo "$1 ${gp_st_start:-} ${gp_boot:-}"
}
# Is the process recorded in FILE ("PID [START [BOOT]]") still alive and the
# same process? Sets gp_same_pid (and gp_same_line, the file's line).
gp_same() {
  gp_same_line=""
  read -r gp_same_line 2>/dev/null <"$1" || [ -n "$gp_same_line" ] || { gp_same_pid=""; return 1; }
  gp_same_ident "$gp_same_line"
}
# The same for an identity line itself.
gp_same_ident() {
  gp_same_pid=""
  # shellcheck disable=SC2086
  set -- $1
  case "${1:-}" in '' | *[!0-9]*) return 1 ;; esac
  [ "$1" -gt 1 ] || return 1
  if [ -n "${2:-}" ] && gp_stat "$1"; then
    [ "$gp_st_state" != Z ] || return 1
    [ "$gp_st_start" = "$2" ] || return 1
    if [ -n "${3:-}" ]; then
      gp_boot_id
      [ -z "$gp_boot" ] || [ "$gp_boot" = "$3" ] || return 1
    fi
    gp_same_pid=$1
    return 0
  fi
  # with /proc, a line we cannot confirm (the process is gone, or a
  # pid-only line: hand-written, or from an older gpupatrol) is stale
  [ ! -d /proc/self ] || return 1
  # no /proc on this box: liveness is all there is
  kill -0 "$1" 2>/dev/null || return 1
  gp_same_pid=$1
}
# Send $2 (TERM, KILL) to process group $1 (a setsid leader) and to every
# process of the tree collected in gp_tree.
gp_signal_tree() {
  kill -"$2" -"$1" 2>/dev/null
  for gp_sp in $gp_tree; do kill -"$2" "$gp_sp" 2>/dev/null; done
  return 0
}
# Is any process of gp_tree still alive (not a zombie)?
gp_tree_alive() {
  for gp_sp in $gp_tree; do
    if gp_stat "$gp_sp" && [ "$gp_st_state" != Z ]; then return 0; fi
  done
  return 1
}
# Stop the tree of $1 (its group too): TERM, up to $2 seconds, then KILL.
# 0 when nothing of it is left.
gp_stop_tree() {
  gp_tree_pids "$1"
  [ -n "$gp_tree" ] || return 0
  gp_signal_tree "$1" TERM
  gp_w=0
  while gp_tree_alive && [ "$gp_w" -lt "$(($2 * 5))" ]; do sleep 0.2; gp_w=$((gp_w + 1)); done
  gp_tree_alive || return 0
  gp_signal_tree "$1" KILL
  gp_w=0
  while gp_tree_alive && [ "$gp_w" -lt 10 ]; do sleep 0.2; gp_w=$((gp_w + 1)); done
  ! gp_tree_alive
}

# Every process that carries GPUPATROL_CHAIN_RUN=$1 in its environment:
# all a chain started, setsid'd and double-forked ones too (only a process
# that clears its environment escapes), never a stranger's (the token is
# random per install). In gp_run_pids, without this shell.
gp_run_pids() {
  gp_run_pids=""
  [ -n "$1" ] && [ -d /proc/self ] || return 0
  if printf 'x\000' | grep -qxz x 2>/dev/null; then
    gp_rf=$(grep -lzxF -e "GPUPATROL_CHAIN_RUN=$1" /proc/[0-9]*/environ 2>/dev/null)
  else
    gp_rf=""
    for gp_f in /proc/[0-9]*/environ; do
      tr "\000" "\n" <"$gp_f" 2>/dev/null | grep -qxF -e "GPUPATROL_CHAIN_RUN=$1" && gp_rf="$gp_rf $gp_f"
    done
  fi
  for gp_f in $gp_rf; do
    gp_p=${gp_f#/proc/}; gp_p=${gp_p%/environ}
    [ "$gp_p" = "$$" ] && continue
    # gone since (the grep itself), or a zombie
    gp_stat "$gp_p" && [ "$gp_st_state" != Z ] || continue
    # a tmux/screen server a stage started serves sessions beyond the run
    case "$gp_st_comm" in tmux*|screen*|SCREEN*) continue ;; esac
    gp_run_pids="$gp_run_pids $gp_p"
  done
}
# Stop every process of chain run $1 (gp_run_pids): TERM, up to $2 seconds,
# then KILL. 0 when none is left; the survivors stay in gp_run_pids.
gp_stop_run() {
  gp_run_pids "$1"
  [ -n "$gp_run_pids" ] || return 0
  # shellcheck disable=SC2086
  kill -TERM $gp_run_pids 2>/dev/null
  gp_w=0
  while [ "$gp_w" -lt "$(($2 * 5))" ]; do
    gp_run_pids "$1"; [ -n "$gp_run_pids" ] || return 0
    sleep 0.2; gp_w=$((gp_w + 1))
  done
  # shellcheck disable=SC2086
  kill -KILL $gp_run_pids 2>/dev/null
  gp_w=0
  while [ "$gp_w" -lt 10 ]; do
    gp_run_pids "$1"; [ -n "$gp_run_pids" ] || return 0
    sleep 0.2; gp_w=$((gp_w + 1))
  done
  return 1
}

# squeue ARGS: gp_qrc 0 listed (gp_q: only the lines that start with a job
# id; a warning squeue prints is not a job), 1 not in the queue, 2 squeue
# failed or did not answer in time (the controller is down or busy: gp_qerr).
# An unknown job id is "not in the queue" (it left it and was purged), every
# other error is a failure.
gp_squeue() {
  gp_qto=${GP_TO:-}
  [ -n "$gp_qto" ] || { command -v timeout >/dev/null 2>&1 && gp_qto="timeout -k 2 30"; }
  gp_qo=$($gp_qto squeue "$@" 2>&1)
  gp_rc=$?
  gp_q=""; gp_qerr=""; gp_qother=""
  while IFS= read -r gp_ql; do
    gp_qid=${gp_ql%% *}
    case "$gp_qid" in
      '') ;;
      [0-9]*)
        case "$gp_qid" in
          *[!]0-9_,%[+-]*) gp_qother=${gp_qother:-$gp_ql} ;;
          *) gp_q="$gp_q$gp_ql
" ;;
        esac ;;
      *) gp_qother=${gp_qother:-$gp_ql} ;;
    esac
  done <<GP_EOF
$gp_qo
GP_EOF
  gp_q=${gp_q%"
"}
  if [ "$gp_rc" = 0 ]; then
    if [ -n "$gp_q" ]; then gp_qrc=0; else gp_qrc=1; fi
    return 0
  fi
  gp_q=""
  case "$gp_rc:$gp_qo" in
    124:* | 137:* | 143:*) gp_qrc=2; gp_qerr="no answer in time" ;;
    *"Invalid job id"*) gp_qrc=1 ;;
    *) gp_qrc=2; gp_qerr=$(printf "%s" "${gp_qother:-$gp_qo}" | head -n 1 | tr -cd "A-Za-z0-9 ._:()/-" | cut -c 1-160) ;;
  esac
}
# Is job $1 (a line of gp_q: "ID NAME USER ...") the one we started: named
# $2 and owned by this user? A job id says nothing once the controller's
# state was lost (ids restart) or they wrapped.
gp_job_is_ours() {
  gp_jw=$2
  gp_user
  # shellcheck disable=SC2086
  set -- $1
  [ "${2:-}" = "$gp_jw" ] && [ "${3:-}" = "$gp_me" ]
}
# This user's name, in gp_me (asked once).
gp_user() {
  [ -n "${gp_me:-}" ] && return 0
  gp_me=${USER:-}
  [ -n "$gp_me" ] || gp_me=$(id -un 2>/dev/null)
}
