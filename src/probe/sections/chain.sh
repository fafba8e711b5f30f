# chain: the on-box chain's sentinels. The chain's process (identified by
# pid, start time and boot: a stale chain.pid after a reboot names another
# process), its Slurm jobs (a failing squeue is unknown, never "stopped"),
# DONE, and per stage: status, heartbeat and output (STAGE.log) mtimes by the
# box's clock, whether its process is alive, and its result line. One stat
# for every file's mtime.
gp_chain() {
  gp_d=$GP_CHAIN_DIR
  if [ ! -d "$gp_d" ]; then echo "chain=absent"; return 0; fi
  echo "chain=present"
  gp_alive=no
  if [ -f "$gp_d/chain.pid" ]; then
    if gp_same "$gp_d/chain.pid"; then
      gp_alive=yes; echo "chain_pid=$gp_same_pid"
      gp_started "$gp_same_pid"; [ -n "$gp_started_at" ] && echo "chain_started=$gp_started_at"
    else
      echo "chain_pid_stale=1"
    fi
  fi
  if [ -f "$gp_d/slurm.jobs" ]; then
    gp_qdown=""
    while read -r gp_id gp_stage; do
      # a controller that did not answer in time is not asked again this
      # tick (one timeout, not one per stage)
      if [ -n "$gp_qdown" ]; then gp_alive=unknown; continue; fi
      # only the job we submitted: named PROFILE-STAGE and ours (an id alone
      # names another job once the controller's ids restarted)
      gp_want="$GP_CHAIN_JOBNAME-$gp_stage"
      gp_squeue -h -j "$gp_id" -o "%i %j %u %T %r" </dev/null
      if [ "$gp_qrc" = 0 ] && ! gp_job_is_ours "$gp_q" "$gp_want"; then
        echo "slurm_${gp_stage}_foreign=1"; gp_qrc=1
      fi
      case "$gp_qrc" in
        0)
          gp_alive=yes
          # shellcheck disable=SC2086
          set -- $gp_q
          echo "slurm_${gp_stage}_id=$gp_id"; echo "slurm_${gp_stage}_state=${4:-}"; echo "slurm_${gp_stage}_reason=${5:-}"
          ;;
        1)
          gp_slurm_final "$gp_id" "$gp_want" </dev/null
          echo "slurm_${gp_stage}_id=$gp_id"; echo "slurm_${gp_stage}_state=$gp_final_state"
          echo "slurm_${gp_stage}_exit=$gp_final_exit"; echo "slurm_${gp_stage}_reason=$gp_final_reason"
          ;;
        *)
          gp_alive=unknown; echo "slurm_error=$gp_qerr"
          [ "$gp_qerr" = "no answer in time" ] && gp_qdown=1
          ;;
      esac
    done <"$gp_d/slurm.jobs"
  fi
  echo "chain_alive=$gp_alive"
  if [ -e "$gp_d/DONE" ]; then echo "done=yes"; else echo "done=no"; fi
  # every stage's heartbeat and log mtime in one stat, by relative (safe) names
  cd "$gp_d" 2>/dev/null && {
    gp_args=""
    gp_i=1
    while [ "$gp_i" -le "${GP_STAGE_N:-0}" ]; do
      eval "gp_args=\"\$gp_args \${GP_STAGE_$gp_i}.heartbeat \${GP_STAGE_$gp_i}.log\""
      gp_i=$((gp_i + 1))
    done
    # shellcheck disable=SC2086
    [ -n "$gp_args" ] && stat -c "mtime %Y %n" -- $gp_args 2>/dev/null
    # back to the login folder (relative profile paths start there)
    cd "$GP_HOME" 2>/dev/null || cd || :
  }
  gp_i=1
  while [ "$gp_i" -le "${GP_STAGE_N:-0}" ]; do
    gp_sn=""; eval "gp_sn=\${GP_STAGE_$gp_i}"
    gp_first_line "$gp_d/$gp_sn.status"
    gp_st=$gp_fl
    gp_pa=no
    gp_same "$gp_d/$gp_sn.pid" && gp_pa=yes
    echo "stage_$gp_i=${gp_st:-NONE}|$gp_pa"
    gp_first_line "$gp_d/$gp_sn.result"
    echo "stage_${gp_i}_result=$gp_fl"
    gp_i=$((gp_i + 1))
  done
  return 0
}
