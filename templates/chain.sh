# Stages joined with && so DONE lands only when every stage succeeded.
# Each stage leaves STAGE.pid ("PID START BOOT"), STAGE.heartbeat (touched
# while it runs), STAGE.status (SUCCESS / FAILED <code> / ABORTED),
# STAGE.result and STAGE.log in $GP_DIR. Each stage runs in its own session
# (setsid), so stopping the chain stops all of it: TERM/INT/HUP mark the
# running stage ABORTED and stop its whole process tree, then every process
# that carries the run's GPUPATROL_CHAIN_RUN token (a stage's background
# child, one that called setsid).
set -u
mkdir -p "$GP_DIR" || exit 1
cd "$GP_DIR" || exit 1
# One chain per folder: chain.pid is created exclusively. A live owner means
# another copy runs (exit 3); a stale one (a chain killed without its trap,
# a reboot) is replaced. A Slurm stage is one job of the chain: the
# scheduler runs them one after another.
gp_claim() {
  ( set -C; gp_ident $$ >"$GP_DIR/chain.pid" ) 2>/dev/null && return 0
  # its owner writes the line just after creating the file
  gp_i=0
  while [ ! -s "$GP_DIR/chain.pid" ] && [ "$gp_i" -lt 10 ]; do sleep 0.2; gp_i=$((gp_i + 1)); done
  if gp_same "$GP_DIR/chain.pid" && [ "$gp_same_pid" != $$ ]; then
    echo "another chain runs in $GP_DIR (pid $gp_same_pid); not starting a second copy" >&2
    return 1
  fi
  rm -f "$GP_DIR/chain.pid"
  ( set -C; gp_ident $$ >"$GP_DIR/chain.pid" ) 2>/dev/null && return 0
  echo "another chain started in $GP_DIR just now; not starting a second copy" >&2
  return 1
}
if [ "${GP_SLURM_STAGE:-0}" != 1 ]; then
  gp_claim || exit 3
fi
rm -f "$GP_DIR/DONE" "$GP_DIR/DONE.tmp"
gp_current=""
gp_hb=""
gp_child=""
gp_last=""

gp_notify() {
  [ -n "$GP_NOTIFY" ] || return 0
  GPUPATROL_CHAIN_STATUS=$1 GPUPATROL_CHAIN_STAGE=$2 GPUPATROL_CHAIN_DIR=$GP_DIR \
    sh -c "$GP_NOTIFY" </dev/null >>"$GP_DIR/notify.log" 2>&1 || true
}

gp_abort() {
  trap - TERM INT HUP
  [ -n "$gp_hb" ] && kill "$gp_hb" 2>/dev/null
  # the stage's whole tree, collected before anything is signalled
  [ -n "$gp_child" ] && gp_stop_tree "$gp_child" 10
  # and whatever else this run started (a background or setsid'd child of an
  # earlier stage, a stage launched just as the signal came): they carry the
  # run's token
  gp_stop_run "${GPUPATROL_CHAIN_RUN:-}" 5
  if [ -n "$gp_current" ]; then
    echo ABORTED >"$GP_DIR/$gp_current.status"
    rm -f "$GP_DIR/$gp_current.result.tmp"
  fi
  rm -f "$GP_DIR/DONE.tmp" "$GP_DIR/chain.pid"
  gp_notify ABORTED "$gp_current"
  exit 143
}
trap gp_abort TERM INT HUP

# gp_stage NAME TIMEOUT_SECONDS COMMAND
gp_stage() {
  gp_current=$1
  gp_last=$1
  rm -f "$GP_DIR/$1.status" "$GP_DIR/$1.result"
  touch "$GP_DIR/$1.heartbeat"
  # stopped with its sleep (an orphaned sleep would outlive the chain)
  (trap 'kill "$gp_hs" 2>/dev/null; exit 0' TERM
    while :; do sleep "$GP_HEARTBEAT" & gp_hs=$!; wait "$gp_hs"; touch "$GP_DIR/$1.heartbeat"; done) </dev/null >/dev/null 2>&1 &
  gp_hb=$!
  gp_sid=""
  command -v setsid >/dev/null 2>&1 && gp_sid=setsid
  gp_t0=$(date +%s)
  gp_timed=0
  if [ "$2" -gt 0 ] && command -v timeout >/dev/null 2>&1; then
    gp_timed=1
    $gp_sid timeout -k 30 "$2" sh -c "$3" </dev/null >"$GP_DIR/$1.log" 2>&1 &
  else
    $gp_sid sh -c "$3" </dev/null >"$GP_DIR/$1.log" 2>&1 &
  fi
  gp_child=$!
  gp_ident "$gp_child" >"$GP_DIR/$1.pid"
  wait "$gp_child"
  gp_rc=$?
  # busybox's timeout passes on the TERM it sent (143), or the KILL after -k
  # (137): a stage that ran out its time is FAILED 124 on every box
  case "$gp_rc" in
    137 | 143) [ "$gp_timed" = 1 ] && [ $(($(date +%s) - gp_t0)) -ge "$2" ] && gp_rc=124 ;;
  esac
  kill "$gp_hb" 2>/dev/null
  gp_hb=""
  gp_child=""
  tail -n 1 "$GP_DIR/$1.log" >"$GP_DIR/$1.result.tmp" 2>/dev/null && mv "$GP_DIR/$1.result.tmp" "$GP_DIR/$1.result"
  if [ "$gp_rc" -eq 0 ]; then
    echo SUCCESS >"$GP_DIR/$1.status"
  else
    echo "FAILED $gp_rc" >"$GP_DIR/$1.status"
  fi
  gp_current=""
  return "$gp_rc"
}
