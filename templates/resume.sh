# Guarded resume: the probe just found the run dead; check again, right here,
# right now, before starting anything (another watcher may have resumed it).
GP_MAIN_PID=$$; GP_MAIN_PARENT=$PPID; export GP_MAIN_PID GP_MAIN_PARENT
# shellcheck disable=SC2016
gp_alive=$(sh -c 'eval "$GP_LIB"' gp-probe alive </dev/null 2>&1 | sed -n "s/^alive=//p" | head -n 1)
if [ "$gp_alive" != no ]; then
  echo "not resuming: alive check says ${gp_alive:-nothing}"
  exit 3
fi
if [ -n "$GP_DONE_MARKER" ] && [ -e "$GP_DONE_MARKER" ]; then
  echo "not resuming: done marker exists"
  exit 4
fi
cd || exit 5
printf "%s gpupatrol resume: %s\n" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$GP_RESUME" >>"$GP_RESUME_LOG"
# The resume command detaches (tmux new -d, nohup ... &, sbatch); its output
# goes to the resume log so a backgrounded job cannot hold our channel open.
if command -v timeout >/dev/null 2>&1; then
  timeout -k 5 60 sh -c "$GP_RESUME" </dev/null >>"$GP_RESUME_LOG" 2>&1
else
  sh -c "$GP_RESUME" </dev/null >>"$GP_RESUME_LOG" 2>&1
fi
gp_rc=$?
echo "resume command exited $gp_rc"
exit "$gp_rc"
