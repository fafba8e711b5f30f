# Guarded resume: the probe just found the run dead; check again, right here,
# right now, before starting anything (another watcher may have resumed it).
# (the probe's section library is above: its alive check runs here, in this shell)
GP_MAIN_PID=$$; GP_MAIN_PARENT=$PPID
GP_NOW=$(date +%s); GP_UPTIME_CS=""
GP_HAVE_PGREP=0
command -v pgrep >/dev/null 2>&1 && GP_HAVE_PGREP=1
GP_TO=""
command -v timeout >/dev/null 2>&1 && GP_TO="timeout -k 2 ${GP_SECTION_TIMEOUT:-10}"
GP_GREP_Z=0
printf 'x\000' | grep -qxz x 2>/dev/null && GP_GREP_Z=1
gp_alive_out=$(gp_alive </dev/null 2>&1)
gp_alive=$(printf "%s\n" "$gp_alive_out" | sed -n "s/^alive=//p" | head -n 1)
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
# It runs in the login's environment, not the probe's: a job that inherits
# GPUPATROL_PROBE=1 is skipped by the pgrep alive check as "a probe", and the
# next tick would resume it again; a tmux server started here would pass it
# to every later session.
gp_cmd=$GP_RESUME
(
  unset GPUPATROL_PROBE GP_ALIVE_KIND GP_ALIVE_ARG GP_DONE_MARKER GP_RESUME GP_RESUME_LOG
  if [ "$GP_ORIG_LC_ALL_SET" = 1 ]; then LC_ALL=$GP_ORIG_LC_ALL; export LC_ALL; else unset LC_ALL; fi
  unset GP_ORIG_LC_ALL GP_ORIG_LC_ALL_SET
  if command -v timeout >/dev/null 2>&1; then
    exec timeout -k 5 60 sh -c "$gp_cmd"
  fi
  exec sh -c "$gp_cmd"
) </dev/null >>"$GP_RESUME_LOG" 2>&1
gp_rc=$?
echo "resume command exited $gp_rc"
exit "$gp_rc"
