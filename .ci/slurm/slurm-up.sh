#!/usr/bin/env bash
# Single-node Slurm 22.05 (Debian 12) + munge + slurmdbd/MariaDB, all state under $B, no systemd, no cgroups.
# Used by tests/test_slurm.py (B=<tmp dir>); stop it with slurm-down.sh (by pid file). Ports 6817-6819, 3307.
set -euo pipefail
B=${B:-/tmp/llmft-slurm}
WITH_DBD=${WITH_DBD:-1}
HOST=$(hostname)
T0=$(date +%s.%N)
el() { awk -v a="$(date +%s.%N)" -v b="$T0" 'BEGIN{printf "%.1fs", a-b}'; }
export DEBIAN_FRONTEND=noninteractive
pkgs="slurm-wlm munge"; [ "$WITH_DBD" = 1 ] && pkgs="$pkgs slurmdbd mariadb-server"
# exit 3 = the packages cannot be installed here (tests skip on it); any other failure is a real error
dpkg -s $pkgs >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs >/dev/null; } \
  || { echo "[up] cannot install the Debian packages: $pkgs" >&2; exit 3; }
echo "[up] packages ready: $(el)"
getent hosts "$HOST" >/dev/null || echo "127.0.0.1 $HOST" >> /etc/hosts

mkdir -p $B/munge/{etc,run,lib,log} $B/slurm/{state,spool,log,run} $B/mysql
# --- munge: key dir 0700, socket dir must be 0755 (munged refuses otherwise)
[ -f $B/munge/etc/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=$B/munge/etc/munge.key status=none
chown -R munge:munge $B/munge; chmod 755 $B/munge $B/munge/run; chmod 700 $B/munge/{etc,lib,log}; chmod 400 $B/munge/etc/munge.key
SOCK=$B/munge/run/munge.socket.2
runuser -u munge -- /usr/sbin/munged -F --socket=$SOCK --key-file=$B/munge/etc/munge.key \
  --log-file=$B/munge/log/munged.log --pid-file=$B/munge/run/munged.pid --seed-file=$B/munge/lib/munged.seed \
  > $B/munge/log/munged.stdout 2>&1 &
for i in $(seq 1 40); do munge -S $SOCK -n 2>/dev/null | unmunge -S $SOCK >/dev/null 2>&1 && break; sleep 0.25; done
# munged runs as the munge user: every folder above $B must let it through (0755)
munge -S $SOCK -n 2>/dev/null | unmunge -S $SOCK >/dev/null 2>&1 || { tail -n 3 $B/munge/log/munged.stdout >&2; exit 1; }
echo "[up] munged ok: $(el)"

CPUS=$(nproc); MEM=$(( $(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') * 9 / 10 ))
ACCT="AccountingStorageType=accounting_storage/none"
if [ "$WITH_DBD" = 1 ]; then
  # --- MariaDB on 127.0.0.1:3307, datadir under $B
  [ -d $B/mysql/data/mysql ] || mariadb-install-db --no-defaults --datadir=$B/mysql/data --user=root \
      --auth-root-authentication-method=normal --skip-test-db > $B/mysql/install.log 2>&1
  mariadbd --no-defaults --datadir=$B/mysql/data --socket=$B/mysql/mysqld.sock --port=3307 --bind-address=127.0.0.1 \
    --user=root --pid-file=$B/mysql/mysqld.pid --log-error=$B/mysql/mysqld.err --skip-name-resolve \
    --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 > /dev/null 2>&1 &
  for i in $(seq 1 80); do mariadb --no-defaults -S $B/mysql/mysqld.sock -uroot -e 'select 1' >/dev/null 2>&1 && break; sleep 0.25; done
  mariadb --no-defaults -S $B/mysql/mysqld.sock -uroot -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpass'; GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"
  echo "[up] mariadb ok: $(el)"
  cat > $B/slurm/slurmdbd.conf <<EOC
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3307
StorageUser=slurm
StoragePass=slurmpass
StorageLoc=slurm_acct_db
LogFile=$B/slurm/log/slurmdbd.log
PidFile=$B/slurm/run/slurmdbd.pid
EOC
  chmod 600 $B/slurm/slurmdbd.conf
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819
# persistent conns to slurmdbd ignore AuthInfo and use this as the munge socket:
AccountingStoragePass=socket=$SOCK"
fi

cat > $B/slurm/slurm.conf <<EOC
ClusterName=ci
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire also sets how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$SOCK,cred_expire=10
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$B/slurm/state
SlurmdSpoolDir=$B/slurm/spool
SlurmctldPidFile=$B/slurm/run/slurmctld.pid
SlurmdPidFile=$B/slurm/run/slurmd.pid
SlurmctldLogFile=$B/slurm/log/slurmctld.log
SlurmdLogFile=$B/slurm/log/slurmd.log
PlugStackConfig=$B/slurm/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
$ACCT
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOC
: > $B/slurm/plugstack.conf
export SLURM_CONF=$B/slurm/slurm.conf
if [ "$WITH_DBD" = 1 ]; then
  /usr/sbin/slurmdbd -D > $B/slurm/log/slurmdbd.stdout 2>&1 &
  for i in $(seq 1 80); do timeout 5 sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.25; done
  timeout 5 sacctmgr -n show cluster >/dev/null 2>&1 || { tail -n 3 $B/slurm/log/slurmdbd.log >&2; exit 1; }
  echo "[up] slurmdbd ok: $(el)"
fi
/usr/sbin/slurmctld -D -i -f $SLURM_CONF > $B/slurm/log/slurmctld.stdout 2>&1 &
/usr/sbin/slurmd -D -f $SLURM_CONF > $B/slurm/log/slurmd.stdout 2>&1 &
for i in $(seq 1 120); do timeout 5 sinfo -h -o %t 2>/dev/null | grep -qx idle && break; sleep 0.25; done
timeout 5 sinfo -h -o %t 2>/dev/null | grep -qx idle || { tail -n 3 $B/slurm/log/slurmctld.log >&2; exit 1; }
sinfo
echo "[up] slurm idle: $(el)   export SLURM_CONF=$SLURM_CONF"
