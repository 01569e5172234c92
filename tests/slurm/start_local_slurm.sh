#!/usr/bin/env bash
# Stand up a real single-node SLURM on this (Debian) machine, for tests and CI only.
#
# Needs root. Installs Debian's slurmctld, slurmd, slurm-client and munge when missing,
# writes a minimal slurm.conf and a private munge key into a state directory, starts
# munged, slurmctld and slurmd from there, and waits until `sinfo` shows the node idle.
# No system service is touched: the daemons use their own sockets, ports, pid files and spool
# directories, so stop_local_slurm.sh can end exactly them. The one change outside the state
# directory: /etc/slurm/slurm.conf becomes a symlink to the state directory's slurm.conf (only
# when no slurm.conf is there yet; stop removes it). The job step executor of the Snakemake
# SLURM plugin drops SLURM_CONF from the environment of `srun` inside a job, so `srun` must
# find the configuration at its default place.
#
# Usage:  tests/slurm/start_local_slurm.sh   (idempotent: a running cluster is reused)
# Env:    MINNORM_SLURM_DIR   state directory      [/tmp/minnorm-slurm]
#         MINNORM_SLURM_PORT  slurmctld port; slurmd uses the next one  [6817]
#         MINNORM_SLURM_WAIT  seconds to wait for an idle node          [60]
set -euo pipefail

state_dir=${MINNORM_SLURM_DIR:-/tmp/minnorm-slurm}
ctld_port=${MINNORM_SLURM_PORT:-6817}
slurmd_port=$((ctld_port + 1))
wait_s=${MINNORM_SLURM_WAIT:-60}
partition=debug

say() { echo "[start_local_slurm] $*"; }
die() { echo "[start_local_slurm] ERROR: $*" >&2; exit 1; }

# True when the pid in file $1 is alive and runs program $2 (guards against pid reuse).
pid_alive() {
    local pid
    [[ -s $1 ]] || return 1
    pid=$(<"$1")
    [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$2" ]]
}

node_state() {
    SLURM_CONF=$state_dir/slurm.conf timeout -k 2 5 sinfo -h -N -o %T 2>/dev/null | head -n1
}

[[ $(id -u) -eq 0 ]] || die "must run as root (the daemons run as root here)"

etc_conf=/etc/slurm/slurm.conf
if [[ -e $etc_conf || -L $etc_conf ]] && [[ $(readlink "$etc_conf") != "$state_dir/slurm.conf" ]]; then
    die "$etc_conf exists and is not ours: this machine has a SLURM configuration already"
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
    || ! command -v sinfo >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || die "slurm/munge missing and apt-get not available"
    say "installing slurmctld slurmd slurm-client munge"
    export DEBIAN_FRONTEND=noninteractive
    timeout -k 10 300 apt-get update -q >/dev/null
    timeout -k 10 600 apt-get install -y -q --no-install-recommends \
        slurmctld slurmd slurm-client munge >/dev/null
fi

if pid_alive "$state_dir/slurmctld.pid" slurmctld && pid_alive "$state_dir/slurmd.pid" slurmd; then
    say "already running from $state_dir"
else
    if [[ -e $state_dir/munged.pid || -e $state_dir/slurmctld.pid || -e $state_dir/slurmd.pid ]]; then
        say "stale state in $state_dir: stopping what is left first"
        MINNORM_SLURM_DIR=$state_dir "$(dirname "$0")/stop_local_slurm.sh"
    fi
    rm -rf "$state_dir"
    mkdir -p "$state_dir"/{munge,state,spool,log}
    chmod 0755 "$state_dir"
    chmod 0700 "$state_dir/munge"

    # A private key: the munged here must not depend on (or disturb) a system munge.
    dd if=/dev/urandom of="$state_dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 0400 "$state_dir/munge/munge.key"

    node=$(hostname -s)
    # Memory and CPUs exactly as slurmd detects them, so the node is not drained as "low memory".
    read -r cpus mem < <(slurmd -C | sed -n 's/.*CPUs=\([0-9]*\).*RealMemory=\([0-9]*\).*/\1 \2/p')
    [[ -n ${cpus:-} && -n ${mem:-} ]] || die "could not read CPUs/RealMemory from 'slurmd -C'"

    cat >"$state_dir/slurm.conf" <<EOF
# Written by tests/slurm/start_local_slurm.sh: a single-node test cluster, not for production.
ClusterName=minnorm
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$state_dir/munge/munge.socket
StateSaveLocation=$state_dir/state
SlurmdSpoolDir=$state_dir/spool
SlurmctldPidFile=$state_dir/slurmctld.pid
SlurmdPidFile=$state_dir/slurmd.pid
SlurmctldLogFile=$state_dir/log/slurmctld.log
SlurmdLogFile=$state_dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
# Finished jobs stay visible to squeue this long; the squeue status check relies on it.
MinJobAge=300
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=$partition Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

    say "starting munged, slurmctld, slurmd (state in $state_dir)"
    munged --force \
        --key-file="$state_dir/munge/munge.key" \
        --socket="$state_dir/munge/munge.socket" \
        --pid-file="$state_dir/munged.pid" \
        --seed-file="$state_dir/munge/munged.seed" \
        --log-file="$state_dir/log/munged.log"
    for _ in $(seq 50); do [[ -S $state_dir/munge/munge.socket ]] && break; sleep 0.1; done
    pid_alive "$state_dir/munged.pid" munged || die "munged did not start; see $state_dir/log/munged.log"

    mkdir -p /etc/slurm
    ln -sfn "$state_dir/slurm.conf" "$etc_conf"

    slurmctld -c -f "$state_dir/slurm.conf"
    slurmd -f "$state_dir/slurm.conf"
fi

deadline=$((SECONDS + wait_s))
until [[ $(node_state) == idle ]]; do
    if ((SECONDS >= deadline)); then
        echo "--- slurmctld.log" >&2; tail -n 20 "$state_dir/log/slurmctld.log" >&2 || true
        echo "--- slurmd.log" >&2; tail -n 20 "$state_dir/log/slurmd.log" >&2 || true
        die "node not idle after ${wait_s}s (state: '$(node_state)')"
    fi
    sleep 0.5
done

say "node $(hostname -s) idle in partition '$partition' (pids: munged $(<"$state_dir/munged.pid"), slurmctld $(<"$state_dir/slurmctld.pid"), slurmd $(<"$state_dir/slurmd.pid"))"
say "config: $state_dir/slurm.conf (linked from $etc_conf); logs: $state_dir/log"
