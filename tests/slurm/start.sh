#!/bin/sh
# Start a throw-away single-node Slurm on this machine for the tests:
# munged, slurmctld and slurmd, one node named after `hostname`.
# Prints "slurm ready" on success; exits non-zero with the reason otherwise.
set -u
dir=${GP_SLURM_DIR:-/tmp/gpupatrol-slurm}
host=$(hostname -s 2>/dev/null || hostname)
cpus=$(nproc)
mem=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.5 }' /proc/meminfo)
mkdir -p "$dir/state" "$dir/spool" "$dir/log" /etc/slurm /run/munge /var/log/munge /var/lib/munge /etc/munge
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key 2>/dev/null || true
chmod 700 /etc/munge 2>/dev/null || true
munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
  pkill -x munged 2>/dev/null
  i=0; while pgrep -x munged >/dev/null 2>&1 && [ "$i" -lt 25 ]; do sleep 0.2; i=$((i + 1)); done
  su -s /bin/sh munge -c "/usr/sbin/munged --force" 2>/dev/null || /usr/sbin/munged --force || { echo "munged failed"; exit 1; }
  i=0; while ! munge_ok && [ "$i" -lt 25 ]; do sleep 0.2; i=$((i + 1)); done
  munge_ok || { echo "munged does not answer"; exit 1; }
fi
cat >/etc/slurm/slurm.conf <<CONF
ClusterName=gpupatrol
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MinJobAge=600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
cp /etc/slurm/slurm.conf /etc/slurm-llnl/slurm.conf 2>/dev/null || true
ctld_up() { scontrol ping 2>/dev/null | grep -q "is UP"; }
if ! ctld_up; then
  # a controller that is shutting down or wedged: make way for a fresh one
  pkill -x slurmctld 2>/dev/null
  i=0; while pgrep -x slurmctld >/dev/null 2>&1 && [ "$i" -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
  /usr/sbin/slurmctld -c >"$dir/log/ctld.out" 2>&1 || { echo "slurmctld failed: $(tail -n 5 "$dir/log/slurmctld.log" 2>/dev/null)"; exit 1; }
  i=0; while ! ctld_up && [ "$i" -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
fi
# slurmd is cheap to restart and may be half-dead from an earlier run
pkill -x slurmd 2>/dev/null
i=0; while pgrep -x slurmd >/dev/null 2>&1 && [ "$i" -lt 50 ]; do sleep 0.2; i=$((i + 1)); done
/usr/sbin/slurmd -c >"$dir/log/d.out" 2>&1 || { echo "slurmd failed: $(tail -n 5 "$dir/log/slurmd.log" 2>/dev/null)"; exit 1; }
i=0
while [ "$i" -lt 60 ]; do
  state=$(sinfo -h -N -o "%T" 2>/dev/null | head -n 1)
  case "$state" in
    idle*|mixed*|allocated*) echo "slurm ready ($host, $cpus cpus)"; exit 0 ;;
    down*|drain*) scontrol update nodename="$host" state=resume >/dev/null 2>&1 ;;
  esac
  i=$((i + 1)); sleep 0.5
done
echo "slurm not ready: node state '${state:-none}'; $(tail -n 3 "$dir/log/slurmctld.log" 2>/dev/null)"
exit 1
