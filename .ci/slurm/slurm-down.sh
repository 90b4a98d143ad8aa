#!/usr/bin/env bash
# Stop daemons by their pid files (never by name).
B=${B:-/tmp/llmft-slurm}
# End the jobs first, so that every slurmstepd exits while slurmd and slurmctld can still hear from it.
if [ -f $B/slurm/run/slurmctld.pid ] && kill -0 "$(cat $B/slurm/run/slurmctld.pid)" 2>/dev/null; then
  export SLURM_CONF=$B/slurm/slurm.conf
  timeout 10 scancel --partition=debug 2>/dev/null || true
  for i in $(seq 1 60); do [ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.25; done
fi
for f in $B/slurm/run/slurmd.pid $B/slurm/run/slurmctld.pid $B/slurm/run/slurmdbd.pid $B/mysql/mysqld.pid $B/munge/run/munged.pid; do
  [ -f "$f" ] || continue; p=$(cat "$f"); kill "$p" 2>/dev/null && echo "stopped $f ($p)"
  for i in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$p" 2>/dev/null; then kill -9 "$p"; echo "killed $f ($p): it ignored SIGTERM for 10 s"; fi
done
