# The driver: the box's clock and boot time once, the GPU sampler started
# first (in the background), then each planned section framed as
#   NONCE BEGIN name / ...lines... / NONCE END name rc=N trunc=0
# The nonce is fresh per tick: log text cannot forge a frame.
GP_HOME=$PWD
GP_MAIN_PID=$$; GP_MAIN_PARENT=$PPID
GP_NOW=$(date +%s)
# uptime in centiseconds (a process's start in /proc/PID/stat counts clock
# ticks: 100 a second, USER_HZ on every Linux this runs on)
gp_up=""
read -r gp_up _ 2>/dev/null </proc/uptime || :
case "$gp_up" in
  *.??) gp_uc=${gp_up%.*}${gp_up#*.} ;;
  *) gp_uc="" ;;
esac
case "$gp_uc" in '' | *[!0-9]*) GP_UPTIME_CS="" ;; *) GP_UPTIME_CS=$gp_uc ;; esac
GP_HAVE_TIMEOUT=0; GP_TO=""
if command -v timeout >/dev/null 2>&1; then GP_HAVE_TIMEOUT=1; GP_TO="timeout -k 2 $GP_SECTION_TIMEOUT"; fi
GP_HAVE_PGREP=0
command -v pgrep >/dev/null 2>&1 && GP_HAVE_PGREP=1
GP_GREP_Z=0
[ "$GP_ALIVE_KIND" = pgrep ] && printf 'x\000' | grep -qxz x 2>/dev/null && GP_GREP_Z=1
gp_section() {
  printf "%s BEGIN %s\n" "$GP_NONCE" "$1"
  "gp_$1"
  gp_rc=$?
  printf "\n%s END %s rc=%s trunc=0\n" "$GP_NONCE" "$1" "$gp_rc"
}
printf "%s START v2\n" "$GP_NONCE"
case " $GP_SECTIONS " in *" gpu "*) gp_gpu_start ;; esac
for gp_name in $GP_SECTIONS; do
  gp_section "$gp_name"
done
printf "%s FIN\n" "$GP_NONCE"
