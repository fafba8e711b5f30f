# Stages joined with && so DONE lands only when every stage succeeded.
# Each stage leaves STAGE.pid, STAGE.heartbeat (touched while it runs),
# STAGE.status (SUCCESS / FAILED <code> / ABORTED), STAGE.result and STAGE.log
# in $GP_DIR. TERM/INT mark the running stage ABORTED and stop it.
set -u
mkdir -p "$GP_DIR" || exit 1
cd "$GP_DIR" || exit 1
echo $$ >"$GP_DIR/chain.pid"
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
  if [ -n "$gp_child" ]; then
    kill -TERM "$gp_child" 2>/dev/null
    pkill -TERM -P "$gp_child" 2>/dev/null
  fi
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
  (while :; do sleep "$GP_HEARTBEAT"; touch "$GP_DIR/$1.heartbeat"; done) </dev/null >/dev/null 2>&1 &
  gp_hb=$!
  if [ "$2" -gt 0 ] && command -v timeout >/dev/null 2>&1; then
    timeout -k 30 "$2" sh -c "$3" </dev/null >"$GP_DIR/$1.log" 2>&1 &
  else
    sh -c "$3" </dev/null >"$GP_DIR/$1.log" 2>&1 &
  fi
  gp_child=$!
  echo "$gp_child" >"$GP_DIR/$1.pid"
  wait "$gp_child"
  gp_rc=$?
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
