# Runs the sections of the lib above, each bounded in time (timeout) and in
# output (awk), and frames each as
#   NONCE BEGIN name / ...lines... / NONCE END name rc=N trunc=0|1
# The nonce is fresh per tick, so log text cannot forge a frame.
gp_bound() {
  awk -v sec="$1" "
    BEGIN { n = ENVIRON[\"GP_NONCE\"]; max = ENVIRON[\"GP_MAX_SECTION\"] + 0; rc = \"?\"; used = 0; trunc = 0 }
    index(\$0, n \" RC \") == 1 { rc = substr(\$0, length(n) + 5); next }
    { if (length(\$0) > 4096) { \$0 = substr(\$0, 1, 4096); trunc = 1 }
      if (used + length(\$0) + 1 > max) { trunc = 1; next }
      print; used += length(\$0) + 1 }
    END { printf \"%s END %s rc=%s trunc=%d\\n\", n, sec, rc, trunc }"
}
gp_section() {
  printf "%s BEGIN %s\n" "$GP_NONCE" "$1"
  # shellcheck disable=SC2016
  if [ "$GP_HAVE_TIMEOUT" = 1 ]; then
    { timeout -k 2 "$GP_SECTION_TIMEOUT" sh -c 'eval "$GP_LIB"' gp-probe "$1" </dev/null 2>&1; printf "\n%s RC %s\n" "$GP_NONCE" "$?"; } | gp_bound "$1"
  else
    { sh -c 'eval "$GP_LIB"' gp-probe "$1" </dev/null 2>&1; printf "\n%s RC %s\n" "$GP_NONCE" "$?"; } | gp_bound "$1"
  fi
}
export GP_LIB
GP_HAVE_TIMEOUT=0
command -v timeout >/dev/null 2>&1 && GP_HAVE_TIMEOUT=1
export GP_HAVE_TIMEOUT
GP_MAIN_PID=$$; GP_MAIN_PARENT=$PPID; export GP_MAIN_PID GP_MAIN_PARENT
printf "%s START v1\n" "$GP_NONCE"
gp_section now
gp_alive_out=$(gp_section alive)
printf "%s\n" "$gp_alive_out"
GP_JOB_PID=$(printf "%s\n" "$gp_alive_out" | sed -n "s/^pid=\([0-9][0-9]*\)$/\1/p" | head -n 1)
export GP_JOB_PID
for gp_name in $GP_SECTIONS; do
  gp_section "$gp_name"
done
printf "%s FIN\n" "$GP_NONCE"
