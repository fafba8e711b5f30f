# gpu: `nvidia-smi --query-gpu` sampled GP_GPU_SAMPLES times, GP_GPU_INTERVAL
# apart (one snapshot lies about utilisation). The sampler starts first, in
# the background, into a private temp file, and the other sections run
# meanwhile; this section waits for it and prints its rows as
# `g SAMPLE RC row`. Each call is under `timeout`: a wedged driver costs
# this section.
GP_GPU_QUERY=index,utilization.gpu,memory.used,memory.total,temperature.gpu,power.draw,power.limit
gp_gpu_start() {
  gp_gpu_state=absent
  command -v nvidia-smi >/dev/null 2>&1 || return 0
  gp_gpu_state=sync
  gp_gpu_file=${TMPDIR:-/tmp}/.gpupatrol-gpu-$$-$GP_NONCE
  # created here, exclusively, private (noclobber): never a planted file
  gp_um=$(umask); umask 077
  set -C
  { : >"$gp_gpu_file"; } 2>/dev/null && gp_gpu_state=async
  set +C
  umask "$gp_um"
  [ "$gp_gpu_state" = async ] || return 0
  gp_gpu_sample >"$gp_gpu_file" 2>&1 &
  gp_gpu_pid=$!
}
gp_gpu_sample() {
  gp_gi=1
  while [ "$gp_gi" -le "${GP_GPU_SAMPLES:-3}" ]; do
    if [ -n "${GP_GPU_IDS:-}" ]; then
      gp_go=$($GP_TO nvidia-smi -i "$GP_GPU_IDS" --query-gpu=$GP_GPU_QUERY --format=csv,noheader,nounits 2>&1 </dev/null)
      gp_grc=$?
      # ids nvidia-smi does not know here (renumbered inside a device
      # cgroup): what it shows is the job's
      case "$gp_grc" in 0 | 124 | 137 | 143) ;; *) GP_GPU_IDS="" ;; esac
    fi
    if [ -z "${GP_GPU_IDS:-}" ]; then
      gp_go=$($GP_TO nvidia-smi --query-gpu=$GP_GPU_QUERY --format=csv,noheader,nounits 2>&1 </dev/null)
      gp_grc=$?
    fi
    # busybox's timeout says 143, GNU's 124 (137 after its KILL)
    case "$gp_grc" in 137 | 143) gp_grc=124 ;; esac
    while IFS= read -r gp_gl; do echo "g $gp_gi $gp_grc $gp_gl"; done <<GP_EOF
$gp_go
GP_EOF
    # a wedged driver stays wedged: no more samples into the same timeout
    [ "$gp_grc" = 124 ] && break
    [ "$gp_gi" -lt "${GP_GPU_SAMPLES:-3}" ] && sleep "${GP_GPU_INTERVAL:-0.4}"
    gp_gi=$((gp_gi + 1))
  done
}
# Copy the sampler's rows (bounded); 124 when a sample ran into its timeout
# (the driver is wedged).
gp_gpu_emit() {
  gp_gn=0; gp_gto=0
  while IFS= read -r gp_gl && [ "$gp_gn" -lt 1024 ]; do
    echo "$gp_gl"; gp_gn=$((gp_gn + 1))
    case "$gp_gl" in "g "*" 124 "* | "g "*" 124") gp_gto=1 ;; esac
  done
  [ "$gp_gto" = 0 ] || return 124
}
gp_gpu() {
  case "$gp_gpu_state" in
    absent) echo "absent"; return 0 ;;
    sync) gp_gpu_sample | gp_gpu_emit; return ;;
  esac
  wait "$gp_gpu_pid"
  gp_gpu_emit <"$gp_gpu_file"
  gp_grc=$?
  rm -f -- "$gp_gpu_file"
  return "$gp_grc"
}
