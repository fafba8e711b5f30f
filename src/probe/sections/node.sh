# node: a Slurm job's GPUs and memory, read where the job runs. The SSH box
# is a login node; its GPUs and cgroup are not the job's. One job step
# (`srun --overlap`: it shares the job's CPUs, memory and, on Slurm 22.05+,
# its GPUs) runs one task on each of the job's nodes, each printing its node
# name, its cgroup lines and its GPU rows, prefixed by srun's task label.
# Without a running job, without srun, or when the step fails, it says so:
# never the login node's numbers in the job's place.
gp_node() {
  if [ "${GP_ALIVE_STATE:-}" != yes ] || [ -z "${GP_SLURM_JOB:-}" ]; then
    echo "node_status=job-not-running"; return 0
  fi
  if ! command -v srun >/dev/null 2>&1; then echo "node_status=no-srun"; return 0; fi
  gp_nn=${GP_SLURM_NNODES:-1}
  case "$gp_nn" in '' | *[!0-9]* | 0) gp_nn=1 ;; esac
  case "$GP_SLURM_JOB" in *[!0-9]*) echo "node_status=no-job-id"; return 0 ;; esac
  echo "node_want=$gp_nn"
  # a big job: one GPU sample per node (the output stays within bounds)
  [ "$gp_nn" -gt 8 ] && GP_GPU_SAMPLES=1
  # none of the caller's own Slurm settings (gpupatrol run inside an
  # allocation) may shape the step or name its GPUs
  for gp_v in $(env | sed -n 's/^\(SLURM_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$gp_v"; done
  unset CUDA_VISIBLE_DEVICES
  # the node script travels in the environment (srun --export=ALL)
  export GP_GPU_SAMPLES GP_GPU_INTERVAL GP_NODE_CALL_TIMEOUT
  gp_no=$(${GP_TO:-} srun --jobid="$GP_SLURM_JOB" --overlap -I5 -N "$gp_nn" -n "$gp_nn" \
    --ntasks-per-node=1 --label --quiet --export=ALL -J gpupatrol-probe \
    sh -c 'eval "$GP_NODE_LIB"' 2>&1 </dev/null)
  gp_nrc=$?
  case "$gp_nrc" in 137 | 143) gp_nrc=124 ;; esac
  echo "node_rc=$gp_nrc"
  echo "node_status=ran"
  # bounded: a cut output is said (the nodes past it did not report)
  printf '%s\n' "$gp_no" | awk 'NR <= 16384 { print } END { if (NR > 16384) print "node_cut=" NR }'
  return 0
}
