# Install and start the chain, detached from this SSH session. Idempotent:
# one installer at a time per folder (a lock); a chain that is alive — its
# process, a stage's tree, its tmux session, its Slurm jobs, or any process
# the last run started (they carry its GPUPATROL_CHAIN_RUN token) — is
# refused (exit 3) unless GP_FORCE=1, which stops all of it and checks that
# nothing survives before starting anything. A finished chain (DONE) is left
# alone (exit 4); a run that stopped after some stages succeeded is refused
# (exit 3): GP_FROM=STAGE continues from a stage, GP_FORCE=1 runs every stage
# again. Exit 0 started, 5 could not start.
mkdir -p "$GP_DIR" || { echo "cannot create $GP_DIR"; exit 5; }
cd "$GP_DIR" || exit 5

# ---- one installer at a time (two agents, cron and a person, a retry) ----
gp_lock=.install.lock
gp_take_lock() {
  if mkdir "$gp_lock" 2>/dev/null; then gp_ident $$ >"$gp_lock/owner"; return 0; fi
  # held by a live installer, or left by one that died; its owner line is
  # written just after the folder: give it a moment
  gp_i=0
  while [ ! -s "$gp_lock/owner" ] && [ "$gp_i" -lt 10 ]; do sleep 0.2; gp_i=$((gp_i + 1)); done
  if gp_same "$gp_lock/owner"; then
    echo "refused: another chain install is running in $GP_DIR (pid $gp_same_pid); not starting a second copy"
    exit 3
  fi
  # stale: set aside by rename (one of two racing installers gets it), then take it
  mv "$gp_lock" "$gp_lock.stale.$$" 2>/dev/null && rm -rf "$gp_lock.stale.$$"
  if mkdir "$gp_lock" 2>/dev/null; then gp_ident $$ >"$gp_lock/owner"; return 0; fi
  echo "refused: another chain install is running in $GP_DIR; not starting a second copy"
  exit 3
}
gp_take_lock
trap 'rm -rf "$GP_DIR/$gp_lock"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- what of the old chain still runs ----
gp_alive=""
gp_chain_id=""
# a process counts only if it is the one recorded (pid, start time, boot):
# after a reboot a stale chain.pid names some other process
if [ -f chain.pid ] && gp_same chain.pid; then
  gp_chain_id=$gp_same_line; gp_alive="pid $gp_same_pid"
fi
# stage processes still running (a chain killed without its trap leaves them)
gp_stage_ids=""
for gp_s in $GP_STAGE_NAMES; do
  if [ -f "$gp_s.pid" ] && gp_same "$gp_s.pid"; then
    gp_stage_ids="$gp_stage_ids$gp_same_line
"
    gp_alive="${gp_alive:+$gp_alive, }stage $gp_s pid $gp_same_pid"
  fi
done
if command -v tmux >/dev/null 2>&1 && tmux has-session -t "=$GP_SESSION" 2>/dev/null; then
  gp_alive="${gp_alive:+$gp_alive, }tmux session $GP_SESSION"
fi
# the chain's Slurm jobs still queued: only a job named PROFILE-STAGE and
# ours (a recorded id may name a stranger's job once the ids restarted)
gp_jobs=""
gp_queue_alive() {
  gp_jobs=""
  [ -f slurm.jobs ] || return 0
  while read -r gp_id gp_st; do
    gp_squeue -h -j "$gp_id" -o "%i %j %u" </dev/null
    case "$gp_qrc" in
      0) gp_job_is_ours "$gp_q" "$GP_JOBNAME-$gp_st" && gp_jobs="$gp_jobs $gp_id" ;;
      2) echo "refused: cannot tell whether the chain's Slurm jobs still run (squeue failed: $gp_qerr); not starting a second copy"; exit 3 ;;
    esac
  done <slurm.jobs
}
if [ -f slurm.jobs ]; then
  command -v squeue >/dev/null 2>&1 || { echo "refused: slurm.jobs is here but squeue is not"; exit 3; }
  gp_queue_alive
  [ -n "$gp_jobs" ] && gp_alive="${gp_alive:+$gp_alive, }slurm jobs$gp_jobs"
fi
# anything else the last run started (a stage's background or setsid'd child)
gp_old_run=""
[ -f chain.run ] && read -r gp_old_run _ <chain.run 2>/dev/null
gp_run_pids "$gp_old_run"
[ -n "$gp_run_pids" ] && gp_alive="${gp_alive:+$gp_alive, }processes of the last run:$gp_run_pids"

# ---- stop it (--force), or refuse ----
if [ -e DONE ] && [ "$GP_FORCE" != 1 ] && [ -z "$GP_FROM" ] && [ -z "$gp_chain_id$gp_stage_ids$gp_jobs" ]; then
  # finished: nothing to do (what a stage left running in the background is its own)
  echo "already DONE in $GP_DIR; left alone (--force runs it again, --from STAGE from a stage)"
  exit 4
fi
if [ -n "$gp_alive" ]; then
  if [ "$GP_FORCE" != 1 ]; then
    echo "refused: a chain is already running in $GP_DIR ($gp_alive); use --force to replace it"
    exit 3
  fi
  echo "stopping the old chain ($gp_alive)"
  if [ -n "$gp_chain_id" ] && gp_same_ident "$gp_chain_id"; then
    # its trap stops the running stage's tree and marks it ABORTED
    kill -TERM "$gp_same_pid" 2>/dev/null
    gp_i=0
    while gp_same_ident "$gp_chain_id" && [ "$gp_i" -lt "$(((GP_GRACE + 12) * 5))" ]; do sleep 0.2; gp_i=$((gp_i + 1)); done
    gp_same_ident "$gp_chain_id" && gp_stop_tree "$gp_same_pid" 2
  fi
  printf "%s" "$gp_stage_ids" | while read -r gp_l; do
    gp_same_ident "$gp_l" && gp_stop_tree "$gp_same_pid" "$GP_GRACE"
  done
  if command -v tmux >/dev/null 2>&1 && tmux has-session -t "=$GP_SESSION" 2>/dev/null; then
    tmux kill-session -t "=$GP_SESSION" 2>/dev/null
  fi
  # shellcheck disable=SC2086
  [ -n "$gp_jobs" ] && scancel $gp_jobs 2>/dev/null
  gp_i=0
  while [ -n "$gp_jobs" ] && [ "$gp_i" -lt "$((GP_GRACE * 5))" ]; do
    gp_queue_alive; [ -n "$gp_jobs" ] && sleep 0.2; gp_i=$((gp_i + 1))
  done
  gp_stop_run "$gp_old_run" "$GP_GRACE"
  # nothing of the old chain may run beside the new one (a process stuck in
  # the kernel, state D, survives KILL: it is named, and nothing starts)
  gp_left=""
  if [ -n "$gp_chain_id" ] && gp_same_ident "$gp_chain_id"; then gp_left="chain pid $gp_same_pid"; fi
  gp_left="$gp_left$(printf "%s" "$gp_stage_ids" | while read -r gp_l; do gp_same_ident "$gp_l" && printf " stage pid %s" "$gp_same_pid"; done)"
  [ -f slurm.jobs ] && gp_queue_alive && [ -n "$gp_jobs" ] && gp_left="$gp_left slurm jobs$gp_jobs"
  gp_run_pids "$gp_old_run"
  [ -n "$gp_run_pids" ] && gp_left="$gp_left pids$gp_run_pids"
  if [ -n "$gp_left" ]; then
    echo "refused: the old chain survives being stopped ($gp_left); not starting a second copy"
    exit 3
  fi
fi

# ---- which stages run ----
gp_status_of() {
  gp_stv=""
  read -r gp_stv 2>/dev/null <"$1.status" || :
}
if [ -n "$GP_FROM" ]; then
  # every stage before it must have succeeded: its output is what the next one uses
  for gp_s in $GP_STAGE_NAMES; do
    [ "$gp_s" = "$GP_FROM" ] && break
    gp_status_of "$gp_s"
    if [ "$gp_stv" != SUCCESS ]; then
      echo "refused: --from $GP_FROM needs every earlier stage SUCCESS, and $gp_s is ${gp_stv:-not run}"
      exit 3
    fi
  done
elif [ "$GP_FORCE" != 1 ] && [ ! -e DONE ]; then
  # a run that stopped part-way: starting over would redo what succeeded
  gp_ok=""; gp_next=""
  for gp_s in $GP_STAGE_NAMES; do
    gp_status_of "$gp_s"
    if [ "$gp_stv" = SUCCESS ]; then gp_ok="$gp_ok $gp_s"; elif [ -z "$gp_next" ]; then gp_next=$gp_s; gp_nextv=${gp_stv:-not run}; fi
  done
  if [ -n "$gp_ok" ] && [ -n "$gp_next" ]; then
    echo "refused: the last run stopped at stage $gp_next ($gp_nextv) after$gp_ok succeeded; --from $gp_next continues from there, --force runs every stage again"
    exit 3
  fi
fi

# The chain runs in the login's environment, not the installer's: a job that
# inherits GPUPATROL_PROBE=1 is skipped by a pgrep alive check as "a probe",
# and a tmux server started here would hand it to every later session. It
# carries its run's token (GPUPATROL_CHAIN_RUN), so stopping it finds every
# process it started.
gp_launch_env() {
  unset GPUPATROL_PROBE GP_DIR GP_FORCE GP_GRACE GP_SESSION GP_JOBNAME GP_DETACH GP_STAGE_NAMES GP_RUN_STAGES GP_FROM GP_RUN GP_CHAIN GP_STAGE_N GP_SB_N
  gp_k=1
  while [ "$gp_k" -le 64 ]; do unset "GP_STAGE_$gp_k" "GP_STAGE_SCRIPT_$gp_k" "GP_SB_$gp_k"; gp_k=$((gp_k + 1)); done
  if [ "$GP_ORIG_LC_ALL_SET" = 1 ]; then LC_ALL=$GP_ORIG_LC_ALL; export LC_ALL; else unset LC_ALL; fi
  unset GP_ORIG_LC_ALL GP_ORIG_LC_ALL_SET
}
gp_run_env() {
  GPUPATROL_CHAIN_RUN=$gp_tok
  export GPUPATROL_CHAIN_RUN
}
# a fresh start: the old sentinels would lie about the new run (only the
# chain's own files of the stages that run: a job's pidfile in this folder is
# not ours to delete, and with --from the earlier stages' results stay)
for gp_s in $GP_RUN_STAGES; do
  rm -f "$gp_s.status" "$gp_s.heartbeat" "$gp_s.pid" "$gp_s.result" "$gp_s.result.tmp"
done
rm -f chain.pid DONE DONE.tmp slurm.jobs chain.out
gp_tok=$GP_RUN
printf "%s\n" "$gp_tok" >chain.run.tmp && mv chain.run.tmp chain.run || exit 5
# plain copies: the launches below run with the exported ones unset
gp_dir=$GP_DIR; gp_sess=$GP_SESSION; gp_jn=$GP_JOBNAME
gp_first=${GP_RUN_STAGES%% *}
# Wait until the chain has claimed chain.pid (so a second installer after
# ours sees it), or has already finished, or is gone. $1: a liveness test.
gp_confirm() {
  gp_i=0
  while [ "$gp_i" -lt 50 ]; do
    [ -s chain.pid ] && gp_same chain.pid && return 0
    [ -e DONE ] || [ -e "$gp_first.status" ] && return 0
    eval "$1" || break
    sleep 0.2; gp_i=$((gp_i + 1))
  done
  [ -s chain.pid ] && gp_same chain.pid && return 0
  [ -e DONE ] || [ -e "$gp_first.status" ] && return 0
  return 1
}
case "$GP_DETACH" in
  nohup)
    printf "%s" "$GP_CHAIN" >chain.sh.tmp && mv chain.sh.tmp chain.sh || exit 5
    # setsid makes the chain its own session and group leader; it execs
    # (the shell's background child leads no group), so $! is the chain
    if command -v setsid >/dev/null 2>&1; then
      (gp_launch_env; gp_run_env; exec setsid nohup sh chain.sh) >chain.out 2>&1 </dev/null &
    else
      (gp_launch_env; gp_run_env; exec nohup sh chain.sh) >chain.out 2>&1 </dev/null &
    fi
    gp_pid=$!
    if ! gp_confirm 'kill -0 "$gp_pid" 2>/dev/null'; then
      echo "the chain did not start: $(tail -n 2 chain.out 2>/dev/null | tr -cd "A-Za-z0-9 ._:()/,;'=-" | cut -c 1-200)"
      exit 5
    fi
    echo "started: nohup, pid $gp_pid"
    ;;
  tmux)
    printf "%s" "$GP_CHAIN" >chain.sh.tmp && mv chain.sh.tmp chain.sh || exit 5
    # the command, not the client's environment, carries the token: a tmux
    # server that already runs hands a new session its own environment, and
    # one started here must not carry it (stopping the run would stop it)
    (gp_launch_env; exec tmux new-session -d -s "$gp_sess" env "GPUPATROL_CHAIN_RUN=$gp_tok" sh "$gp_dir/chain.sh") || { echo "tmux new-session failed"; exit 5; }
    if ! gp_confirm 'tmux has-session -t "=$gp_sess" 2>/dev/null'; then
      echo "the chain did not start in tmux session $GP_SESSION"
      exit 5
    fi
    echo "started: tmux session $GP_SESSION"
    ;;
  slurm)
    gp_prev=""
    gp_i=1
    while [ "$gp_i" -le "$GP_STAGE_N" ]; do
      gp_name=""; gp_text=""; gp_a=""
      eval "gp_name=\${GP_STAGE_$gp_i}; gp_text=\${GP_STAGE_SCRIPT_$gp_i}"
      printf "%s" "$gp_text" >"stage-$gp_name.sh"
      set --
      gp_j=1
      while [ "$gp_j" -le "${GP_SB_N:-0}" ]; do eval "gp_a=\${GP_SB_$gp_j}"; set -- "$@" "$gp_a"; gp_j=$((gp_j + 1)); done
      if [ -n "$gp_prev" ]; then set -- "$@" "--dependency=afterok:$gp_prev" --kill-on-invalid-dep=yes; fi
      gp_id=$(gp_launch_env; gp_run_env; sbatch --parsable -J "$gp_jn-$gp_name" -D "$gp_dir" -o "$gp_dir/$gp_name.slurm.out" "$@" "$gp_dir/stage-$gp_name.sh" 2>sbatch.err </dev/null) \
        || { echo "sbatch failed for stage $gp_name: $(head -n 1 sbatch.err)"; exit 5; }
      gp_id=${gp_id%%;*}
      echo "$gp_id $gp_name" >>slurm.jobs
      gp_prev=$gp_id
      gp_i=$((gp_i + 1))
    done
    echo "started: slurm jobs $(awk "{ printf \"%s \", \$1 }" slurm.jobs)"
    ;;
esac
exit 0
