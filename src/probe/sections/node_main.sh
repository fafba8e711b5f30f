# The node side of the `node` section: runs as one srun task on each node of
# the job. Its own timeout per nvidia-smi call; the step's cgroup is read at
# the job's level (job_ID in its path), where the job's memory is counted.
GP_TO=""
command -v timeout >/dev/null 2>&1 && GP_TO="timeout -k 1 ${GP_NODE_CALL_TIMEOUT:-5}"
GP_CG_JOB=${SLURM_JOB_ID:-}
echo "node=${SLURMD_NODENAME:-$(hostname)}"
gp_cgroup
# only the job's GPUs: a shared node's others are someone else's (where
# ConstrainDevices hides them, nvidia-smi renumbers; gpu.sh then reads all)
GP_GPU_IDS=${SLURM_STEP_GPUS:-${SLURM_JOB_GPUS:-}}
gp_gpu_state=absent
command -v nvidia-smi >/dev/null 2>&1 && gp_gpu_state=sync
gp_gpu
echo "gpu_rc=$?"
