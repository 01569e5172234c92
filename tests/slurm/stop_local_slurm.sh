#!/usr/bin/env bash
# Stop the single-node SLURM that start_local_slurm.sh started, and nothing else.
#
# Cancels the jobs still queued on that cluster, then ends slurmd, slurmctld and munged by
# the pids recorded in the state directory (each pid is checked to still run the expected
# program, so a recycled pid is never signalled), and removes the /etc/slurm/slurm.conf
# symlink that start made. Logs stay in the state directory.
# Safe to run when nothing is running. Env: MINNORM_SLURM_DIR [/tmp/minnorm-slurm]
set -uo pipefail

state_dir=${MINNORM_SLURM_DIR:-/tmp/minnorm-slurm}

say() { echo "[stop_local_slurm] $*"; }

# Prints the pid in file $1 if it is alive and runs program $2.
live_pid() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2" ]] || return 1
    echo "$pid"
}

if pid=$(live_pid "$state_dir/slurmctld.pid" slurmctld); then
    SLURM_CONF=$state_dir/slurm.conf timeout -k 2 10 scancel --quiet --user=root || true
fi

stopped=0
for daemon in slurmd slurmctld munged; do
    pidfile=$state_dir/$daemon.pid
    if pid=$(live_pid "$pidfile" "$daemon"); then
        kill -TERM "$pid"
        for _ in $(seq 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
        if [[ -d /proc/$pid ]]; then
            say "$daemon ($pid) ignored SIGTERM for 10 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped $daemon ($pid)"
        stopped=$((stopped + 1))
    fi
    rm -f "$pidfile"
done
etc_conf=/etc/slurm/slurm.conf
if [[ -L $etc_conf && $(readlink "$etc_conf") == "$state_dir/slurm.conf" ]]; then
    rm -f "$etc_conf"
fi
((stopped > 0)) || say "nothing was running from $state_dir"
