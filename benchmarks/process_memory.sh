#!/usr/bin/env bash
# The peak resident memory of every large process a command starts (a search's main process, Ray's workers),
# and the peak of each one's own (anonymous) part: pages of mapped files, such as the decoded-folder cache,
# count in the first but the OS can drop them. Polled every 0.5 s, so a peak shorter than that can be missed.
#
#   bash benchmarks/process_memory.sh /tmp/run autocls search ./photos --time-budget 2m
#   cat /tmp/run.rss      # one line per command: "<peak> MB (<peak> MB its own)  <command>"; the output in /tmp/run.log
out=$1; shift
( "$@" ; echo "rc $?" ) > "$out.log" 2>&1 &
pid=$!
declare -A mx ma
while kill -0 $pid 2>/dev/null; do
  while read -r p rss cmd; do
    k=$(echo "$cmd" | cut -c1-40)
    a=$(awk '/^RssAnon/ {print $2}' "/proc/$p/status" 2>/dev/null); a=${a:-0}
    [ "${mx[$k]:-0}" -lt "$rss" ] && mx[$k]=$rss
    [ "${ma[$k]:-0}" -lt "$a" ] && ma[$k]=$a
  done < <(ps -eo pid=,rss=,args= | awk '$2>200000')
  sleep 0.5
done
for k in "${!mx[@]}"; do echo "$((mx[$k]/1024)) MB ($((ma[$k]/1024)) MB its own)  $k"; done | sort -n > "$out.rss"
