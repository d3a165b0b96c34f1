#!/usr/bin/env bash
# slurm-local.sh: a real single-node Slurm cluster on localhost, without systemd, for the `slurm`
# tests and for trying profiles/slurm on a laptop. Debian 12 (bookworm), Slurm 22.05 from Debian,
# run as root. Idempotent: every command can be repeated. The traps of running Slurm without systemd
# are commented where they bite. Verified with Slurm 22.05.8, munge 0.5.15, MariaDB 10.11 (Debian 12);
# README, "Running on SLURM", says how the tests use it.
#
#   bash scripts/slurm-local.sh up        install what is missing, start munged [mariadbd slurmdbd]
#                                         slurmctld slurmd (reuses daemons that already run)
#   bash scripts/slurm-local.sh down      cancel all jobs, stop every daemon by the PID in its pidfile
#   bash scripts/slurm-local.sh status    which daemons run (by pidfile) and sinfo
#   bash scripts/slurm-local.sh selftest  srun + sbatch --wait round trip (+ sacct)
#
# Environment:
#   SLURM_LOCAL_DBD=1 (default)  also MariaDB + slurmdbd, so `sacct` works: the Snakemake slurm
#                                plugin's default status command (profiles/slurm-local uses it).
#   SLURM_LOCAL_DBD=0            no accounting database; a profile MUST then set
#                                `slurm-status-command: squeue`, or the plugin polls sacct forever.
#   SLURM_LOCAL_GPUS=2 (default) the node advertises this many GPUs as a generic resource (gres) with
#                                no device files: Slurm schedules and accounts `--gpus=N` requests and
#                                sets SLURM_GPUS_ON_NODE in the job, but a job sees no real GPU (torch
#                                counts 0 and salt-transfer trains on the CPU). 0 turns GPUs off.
#   SLURM_LOCAL_CLUSTER, SLURM_LOCAL_PARTITION (debug), SLURM_LOCAL_ACCOUNT (testacct)
set -euo pipefail

DBD=${SLURM_LOCAL_DBD:-1}
GPUS=${SLURM_LOCAL_GPUS:-2}
CLUSTER=${SLURM_LOCAL_CLUSTER:-localcluster}   # never change once state exists (see gotchas)
PARTITION=${SLURM_LOCAL_PARTITION:-debug}
ACCOUNT=${SLURM_LOCAL_ACCOUNT:-testacct}
DBPASS=${SLURM_LOCAL_DBPASS:-slurmdbpass}      # loopback-only test DB
CONF=/etc/slurm/slurm.conf
DBDCONF=/etc/slurm/slurmdbd.conf
LOGDIR=/var/log/slurm
STATEDIR=/var/lib/slurm
NODE=$(hostname -s)

log() { echo "[slurm-local] $*" >&2; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_for() { # wait_for SECONDS CMD... : poll until CMD succeeds
  local end=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -ge "$end" ] && return 1
    sleep 0.5
  done
}
stop_pidfile() { # stop_pidfile FILE : SIGTERM the PID in FILE, wait, SIGKILL as last resort
  local f=$1 p
  alive "$f" || return 0
  p=$(cat "$f")
  kill "$p" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || { log "stopped $f ($p)"; return 0; }; sleep 0.5; done
  kill -9 "$p" 2>/dev/null || true
  log "killed $f ($p)"
}

install_pkgs() {
  local pkgs=(munge slurmctld slurmd slurm-client) missing=() p
  [ "$DBD" = 1 ] && pkgs+=(slurmdbd mariadb-server)
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep maintainer scripts from trying to start the daemons (no init system here).
  local pol=/usr/sbin/policy-rc.d made_pol=0
  if [ ! -e "$pol" ]; then printf '#!/bin/sh\nexit 101\n' >"$pol"; chmod +x "$pol"; made_pol=1; fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || { [ $made_pol = 1 ] && rm -f "$pol"; return 1; }
  [ $made_pol = 1 ] && rm -f "$pol"
  return 0
}

ensure_hostname() {
  # slurmd finds its NodeName from `hostname -s`; make sure that name resolves.
  getent hosts "$NODE" >/dev/null || { echo "127.0.0.1 $NODE" >>/etc/hosts; log "added $NODE to /etc/hosts"; }
}

write_conf() { # prints 1 if slurm.conf changed
  local CPUs SocketsPerBoard CoresPerSocket ThreadsPerCore RealMemory mem tmp acct
  eval "$(slurmd -C | head -1 | tr ' ' '\n' | grep -E '^(CPUs|SocketsPerBoard|CoresPerSocket|ThreadsPerCore|RealMemory)=[0-9]+$')"
  mem=$((RealMemory > 2048 ? RealMemory - 1024 : RealMemory))  # headroom, else node DRAINs on "Low RealMemory"
  if [ "$DBD" = 1 ]; then
    # job_comment: lets `sacct -o Comment` show the rule name the plugin puts in --comment
    acct=$'AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\nAccountingStoragePort=6819\nAccountingStoreFlags=job_comment'
  else
    acct='AccountingStorageType=accounting_storage/none'
  fi
  local gres_types='' node_gres=''
  if [ "$GPUS" -gt 0 ]; then
    # AccountingStorageTRES: sacct's AllocTRES then shows the GPUs each job was given.
    gres_types=$'GresTypes=gpu\nAccountingStorageTRES=gres/gpu'
    node_gres=" Gres=gpu:$GPUS"
  fi
  mkdir -p /etc/slurm "$LOGDIR" "$STATEDIR/slurmctld" "$STATEDIR/slurmd"
  local gres_changed=0
  write_gres_conf && gres_changed=1
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
# generated by slurm-local.sh
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# no cgroups anywhere: works in containers/VMs without a writable cgroup tree
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
SwitchType=switch/none
ReturnToService=2
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATEDIR/slurmctld
SlurmdSpoolDir=$STATEDIR/slurmd
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
$acct
JobCompType=jobcomp/none
$gres_types
# keep finished jobs visible to squeue/scontrol for 10 min (plugin's squeue mode needs >= 3x its first poll delay)
MinJobAge=600
InactiveLimit=0
KillWait=30
Waittime=0
SlurmctldTimeout=120
SlurmdTimeout=300
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUs SocketsPerBoard=$SocketsPerBoard CoresPerSocket=$CoresPerSocket ThreadsPerCore=$ThreadsPerCore RealMemory=$mem$node_gres State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  if cmp -s "$tmp" "$CONF" && [ "$gres_changed" = 0 ]; then rm -f "$tmp"; echo 0; else mv "$tmp" "$CONF"; chmod 644 "$CONF"; echo 1; fi
}

write_gres_conf() {
  # GPUs without hardware (see SLURM_LOCAL_GPUS above). slurmd drops a gpu gres that has no File=
  # (the node then goes INVAL: "gres/gpu count reported lower than configured"), so each fake GPU
  # is a character device with /dev/null's numbers (1,3). slurmd reads this at start; a change here
  # always comes with a slurm.conf change, which restarts it.
  local f=/etc/slurm/gres.conf dir=$STATEDIR/fake-gpu i
  if [ "$GPUS" -gt 0 ]; then
    mkdir -p "$dir"
    for i in $(seq 0 $((GPUS - 1))); do [ -c "$dir/gpu$i" ] || mknod "$dir/gpu$i" c 1 3; done
    printf '# generated by slurm-local.sh\nNodeName=%s Name=gpu File=%s/gpu[0-%s]\n' \
      "$NODE" "$dir" $((GPUS - 1)) >"$f.tmp"
    if cmp -s "$f.tmp" "$f"; then rm -f "$f.tmp"; return 1; fi
    mv "$f.tmp" "$f"
  else
    [ -e "$f" ] || return 1
    rm -f "$f"
  fi
  return 0  # changed
}

start_munge() {
  if [ ! -s /etc/munge/munge.key ]; then
    install -d -o munge -g munge -m 0700 /etc/munge
    mungekey --create --keyfile=/etc/munge/munge.key
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 600 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge     # tmpfs: gone after reboot
  alive /run/munge/munged.pid || runuser -u munge -- /usr/sbin/munged
  wait_for 15 sh -c 'munge -n | unmunge' || { log "munged did not come up"; return 1; }
}

start_db() {
  install -d -o mysql -g mysql -m 0755 /run/mysqld
  if ! mariadb-admin ping >/dev/null 2>&1; then
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    setsid /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
      >>"$LOGDIR/mariadbd.log" 2>&1 </dev/null &
    wait_for 60 mariadb-admin ping || { log "mariadbd did not come up"; return 1; }
  fi
  mariadb <<EOF
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DBPASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
EOF
  local tmp; tmp=$(mktemp)
  cat >"$tmp" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=6819
SlurmUser=root
LogFile=$LOGDIR/slurmdbd.log
PidFile=/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
EOF
  if ! cmp -s "$tmp" "$DBDCONF"; then mv "$tmp" "$DBDCONF"; stop_pidfile /run/slurmdbd.pid; else rm -f "$tmp"; fi
  chmod 600 "$DBDCONF"   # slurmdbd refuses a world-readable slurmdbd.conf
  alive /run/slurmdbd.pid || /usr/sbin/slurmdbd
  wait_for 60 sacctmgr -n list cluster || { log "slurmdbd did not come up"; tail -20 "$LOGDIR/slurmdbd.log" >&2; return 1; }
}

node_ready() { sinfo -h -n "$NODE" -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated|completing)$'; }

start_slurm() {
  local changed=$1
  if [ "$changed" = 1 ]; then stop_pidfile /run/slurmd.pid; stop_pidfile /run/slurmctld.pid; fi
  alive /run/slurmctld.pid || /usr/sbin/slurmctld
  wait_for 30 scontrol ping || { log "slurmctld did not come up"; tail -20 "$LOGDIR/slurmctld.log" >&2; return 1; }
  alive /run/slurmd.pid || /usr/sbin/slurmd
  if ! wait_for 20 node_ready; then
    scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true
    wait_for 20 node_ready || { log "node not ready"; sinfo -R >&2; tail -20 "$LOGDIR/slurmd.log" >&2; return 1; }
  fi
}

ensure_account() {
  [ "$DBD" = 1 ] || return 0
  # slurmctld registers the cluster in slurmdbd by itself; add one account with root in it.
  wait_for 30 sh -c "sacctmgr -n -P list cluster format=cluster | grep -qx '$CLUSTER'"
  sacctmgr -n -P list account "$ACCOUNT" format=account | grep -qx "$ACCOUNT" ||
    sacctmgr -i add account "$ACCOUNT" Description=test Organization=test Cluster="$CLUSTER" >/dev/null
  sacctmgr -n -P list assoc user=root account="$ACCOUNT" format=account | grep -qx "$ACCOUNT" ||
    sacctmgr -i add user root Account="$ACCOUNT" DefaultAccount="$ACCOUNT" >/dev/null
}

cmd_up() {
  [ "$(id -u)" = 0 ] || { log "must run as root"; exit 1; }
  install_pkgs
  ensure_hostname
  local changed; changed=$(write_conf)
  start_munge
  [ "$DBD" = 1 ] && start_db
  start_slurm "$changed"
  ensure_account
  log "up: $(sinfo -h -o '%P %a %D %T %N' | tr '\n' ' ')"
}

cmd_down() {
  if alive /run/slurmctld.pid; then
    # cancel everything first so no slurmstepd/job process outlives slurmd
    squeue -h -o %i | xargs -r scancel 2>/dev/null || true
    wait_for 40 sh -c '[ -z "$(squeue -h -o %i)" ]' || true
  fi
  stop_pidfile /run/slurmd.pid
  stop_pidfile /run/slurmctld.pid
  stop_pidfile /run/slurmdbd.pid
  stop_pidfile /run/mysqld/mysqld.pid
  stop_pidfile /run/munge/munged.pid
}

cmd_status() {
  local f
  for f in /run/munge/munged.pid /run/mysqld/mysqld.pid /run/slurmdbd.pid /run/slurmctld.pid /run/slurmd.pid; do
    if alive "$f"; then echo "running $f $(cat "$f")"; else echo "stopped $f"; fi
  done
  # sinfo would wait for a stopped controller
  if alive /run/slurmctld.pid; then sinfo; fi
}

cmd_selftest() {
  srun -N1 -n1 hostname
  local out; out=$(mktemp -d)
  sbatch --wait -o "$out/%j.out" --wrap 'echo "sbatch ok on $(hostname) job $SLURM_JOB_ID"' >/dev/null
  cat "$out"/*.out
  rm -rf "$out"
  if [ "$DBD" = 1 ]; then sacct -X -n -P -o JobID,JobName,State,Account | tail -3; fi
}

case "${1:-up}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  selftest) cmd_selftest ;;
  *) echo "usage: $0 up|down|status|selftest" >&2; exit 2 ;;
esac
