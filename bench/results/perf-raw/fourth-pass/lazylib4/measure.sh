#!/usr/bin/env bash
cd /work/wt/packaging
RAW=bench/results/perf-raw/fourth-pass/lazylib4
{
echo "start $(date -u +%T) load $(cat /proc/loadavg)"
for r in 1 2 3; do
  for v in before after; do
    mkdir -p $RAW/$v-$r
    OUT_DIR=$RAW/$v-$r BIN_DIR=/tmp/lazylib4/$v bash bench/idle_rss.sh $RAW/$v-$r/table.md >/dev/null
    echo "round $r $v done $(date -u +%T) load $(cat /proc/loadavg)"
  done
done
for v in before after; do bash /tmp/lazylib4/sgit_with_repo.sh /tmp/lazylib4/$v; done
echo "--check-config wall time (5 runs each), ms:"
for v in before after; do
  for d in stomp-jenkins herald stomp-git; do
    ts=""
    for i in 1 2 3 4 5; do
      t0=$(date +%s%N); /tmp/lazylib4/$v/$d -c packaging/etc/$d/$d.yaml --check-config >/dev/null 2>&1; rc=$?; t1=$(date +%s%N)
      ts="$ts $(( (t1 - t0) / 100000 ))"
    done
    echo "$v $d (rc $rc):$ts (tenths of ms)"
  done
done
echo "end $(date -u +%T) load $(cat /proc/loadavg)"
} 2>&1
