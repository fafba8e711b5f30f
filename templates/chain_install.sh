# Install and start the chain, detached from this SSH session. Idempotent:
# a chain that is alive is refused (exit 3) unless GP_FORCE=1, which stops it
# first (TERM, KILL after GP_GRACE seconds). Exit 0 started.
mkdir -p "$GP_DIR" || { echo "cannot create $GP_DIR"; exit 5; }
cd "$GP_DIR" || exit 5
gp_alive=""
gp_pid=""
if [ -f chain.pid ]; then
  gp_pid=$(head -n 1 chain.pid | tr -cd "0-9")
  if [ -n "$gp_pid" ] && kill -0 "$gp_pid" 2>/dev/null; then gp_alive="pid $gp_pid"; else gp_pid=""; fi
fi
if command -v tmux >/dev/null 2>&1 && tmux has-session -t "=$GP_SESSION" 2>/dev/null; then
  gp_alive="${gp_alive:+$gp_alive, }tmux session $GP_SESSION"
fi
gp_jobs=""
if [ -f slurm.jobs ] && command -v squeue >/dev/null 2>&1; then
  while read -r gp_id _; do
    if [ -n "$(squeue -h -j "$gp_id" -o %i 2>/dev/null </dev/null)" ]; then gp_jobs="$gp_jobs $gp_id"; fi
  done <slurm.jobs
  [ -n "$gp_jobs" ] && gp_alive="${gp_alive:+$gp_alive, }slurm jobs$gp_jobs"
fi
if [ -n "$gp_alive" ]; then
  if [ "$GP_FORCE" != 1 ]; then
    echo "refused: a chain is already running in $GP_DIR ($gp_alive); use --force to replace it"
    exit 3
  fi
  echo "stopping the old chain ($gp_alive)"
  if [ -n "$gp_pid" ]; then
    # setsid made the chain a process-group leader: stop its whole group
    kill -TERM -- "-$gp_pid" 2>/dev/null || kill -TERM "$gp_pid" 2>/dev/null
    gp_i=0
    while kill -0 "$gp_pid" 2>/dev/null && [ "$gp_i" -lt "$((GP_GRACE * 5))" ]; do sleep 0.2; gp_i=$((gp_i + 1)); done
    if kill -0 "$gp_pid" 2>/dev/null; then kill -KILL -- "-$gp_pid" 2>/dev/null || kill -KILL "$gp_pid" 2>/dev/null; fi
  fi
  if command -v tmux >/dev/null 2>&1 && tmux has-session -t "=$GP_SESSION" 2>/dev/null; then
    tmux kill-session -t "=$GP_SESSION" 2>/dev/null
  fi
  # shellcheck disable=SC2086
  [ -n "$gp_jobs" ] && scancel $gp_jobs 2>/dev/null
  gp_i=0
  while [ -n "$gp_jobs" ] && [ "$gp_i" -lt "$((GP_GRACE * 5))" ]; do
    gp_left=""
    for gp_id in $gp_jobs; do [ -n "$(squeue -h -j "$gp_id" -o %i 2>/dev/null </dev/null)" ] && gp_left="$gp_left $gp_id"; done
    gp_jobs=$gp_left; sleep 0.2; gp_i=$((gp_i + 1))
  done
fi
# a fresh start: old sentinels would lie about the new run
rm -f ./*.status ./*.heartbeat ./*.pid ./*.result ./*.result.tmp DONE DONE.tmp slurm.jobs chain.out
case "$GP_DETACH" in
  nohup)
    printf "%s" "$GP_CHAIN" >chain.sh.tmp && mv chain.sh.tmp chain.sh || exit 5
    if command -v setsid >/dev/null 2>&1; then
      setsid nohup sh chain.sh >chain.out 2>&1 </dev/null &
    else
      nohup sh chain.sh >chain.out 2>&1 </dev/null &
    fi
    gp_i=0
    while [ ! -f chain.pid ] && [ "$gp_i" -lt 50 ]; do sleep 0.1; gp_i=$((gp_i + 1)); done
    echo "started: nohup, pid $(cat chain.pid 2>/dev/null)"
    ;;
  tmux)
    printf "%s" "$GP_CHAIN" >chain.sh.tmp && mv chain.sh.tmp chain.sh || exit 5
    tmux new-session -d -s "$GP_SESSION" sh "$GP_DIR/chain.sh" || { echo "tmux new-session failed"; exit 5; }
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
      gp_id=$(sbatch --parsable -J "$GP_JOBNAME-$gp_name" -D "$GP_DIR" -o "$GP_DIR/$gp_name.slurm.out" "$@" "$GP_DIR/stage-$gp_name.sh" 2>sbatch.err </dev/null) \
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
