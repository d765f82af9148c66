# dom0-side helper for the stock baseline (installed as /scenario/baseline.sh;
# source after /rig/lib.sh and /scenario/rig-guest.sh).
#
# baseline_migrate NAME SCENARIO WORKLOAD REPORT: live-migrate NAME to
# localhost with stock `xl migrate`, its stream carried by migpipe at
# $DEPMIG_LINK_BYTES_PER_SEC; with `-s ""` xl runs the host argument as a
# shell command whose stdin/stdout are the stream's two directions, so the
# pipe stage sits on the sender-to-receiver direction only. migpipe times the
# downtime from the stream itself; a slow `migpipe watch` poller (xl list once a
# second: faster polling steals dom0's CPU from the save) cross-checks it. The report
# (qemu-tests/baseline/README.md) lands in REPORT; xl's output in
# /tmp/NAME.migrate.log. Returns xl migrate's status; MIGRATE_SECONDS is set.
baseline_migrate() {
    local name=$1 scen=$2 wl=$3 report=$4 ev="/tmp/$1.events" t0 rc i wpid mpid shown n
    case ${DEPMIG_LINK_BYTES_PER_SEC:-} in
        ''|*[!0-9]*) rig_fail "no link rate (DEPMIG_LINK_BYTES_PER_SEC='${DEPMIG_LINK_BYTES_PER_SEC:-}')" ;;
    esac
    rm -f "$ev" "$report"
    /scenario/bin/migpipe watch --domain "$name" --events "$ev" --interval-ms 1000 --timeout-s 3000 \
        >"/tmp/$name.watch.log" 2>&1 &
    wpid=$!
    t0=$(cut -d' ' -f1 /proc/uptime)
    xl migrate -s "" "$name" \
        "/scenario/bin/migpipe --rate $DEPMIG_LINK_BYTES_PER_SEC --report $report --events $ev --scenario $scen --workload $wl | xl migrate-receive" \
        >"/tmp/$name.migrate.log" 2>&1 &
    mpid=$!
    # Progress on the console: migpipe's round lines as they come.
    shown=0
    i=0
    while kill -0 "$mpid" 2>/dev/null; do
        sleep 5
        i=$((i + 1))
        if [ $((i % 6)) = 0 ]; then
            rig_say "$(grep '^migpipe: progress' "/tmp/$name.migrate.log" | tail -n 1)"
        fi
        n=$(grep -c '^migpipe: round' "/tmp/$name.migrate.log" 2>/dev/null)
        if [ "${n:-0}" -gt "$shown" ]; then
            grep '^migpipe: round' "/tmp/$name.migrate.log" | tail -n $((n - shown)) | while IFS= read -r l; do rig_say "$l"; done
            shown=$n
        fi
    done
    wait "$mpid"
    rc=$?
    MIGRATE_SECONDS=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
    # migpipe writes the report once its input ends and the poller saw the resume.
    i=0
    while [ ! -f "$report" ] && [ "$i" -lt 120 ]; do sleep 1; i=$((i + 1)); done
    kill "$wpid" 2>/dev/null
    return "$rc"
}

# baseline_summary REPORT: one line with the report's headline figures.
baseline_summary() {
    echo "rounds=$(jnum "$1" rounds) pages=[$(jlist "$1" per_round_pages)] total_pages=$(jnum "$1" total_pages) downtime_ms=$(jnum "$1" downtime_ms) total_time_ms=$(jnum "$1" total_time_ms)"
}

# baseline_check_strict REPORT: fails the scenario unless depmig-stream's
# strict decoder, which read the same bytes as migpipe, accepted the whole of
# stock `xl migrate`'s stream (complete, no error) and counted the same pages
# in every round as migpipe's own round tracker.
baseline_check_strict() {
    local s mine theirs
    s=$(sed -n '/^  "strict_decoder": {$/,/^  }$/p' "$1")
    [ -n "$s" ] || rig_fail "the report has no strict_decoder verdict"
    echo "$s" | grep -q '^    "error": null,\{0,1\}$' \
        || rig_fail "the strict decoder refused stock xl's stream: $(echo "$s" | grep '"error"')"
    echo "$s" | grep -q '^    "complete": true,\{0,1\}$' \
        || rig_fail "the strict decoder did not see the stream's end: $(echo "$s" | grep '"complete"')"
    theirs=$(echo "$s" | sed -n 's/^    "per_round_pages": \[\([0-9, ]*\)\],\{0,1\}$/\1/p' | tr -d ' ')
    mine=$(jlist "$1" per_round_pages)
    [ -n "$mine" ] && [ "$theirs" = "$mine" ] \
        || rig_fail "the strict decoder counted pages per round [$theirs], migpipe [$mine]"
    rig_say "strict decoder: stock xl's stream complete, no error, pages per round [$theirs] as migpipe's"
}
