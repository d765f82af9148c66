#!/bin/sh
# encodings-fast: the same guest (ticker, mmuncher over 16 MiB, 256 MiB)
# moved three times on a link fast enough for the appliances' emulated CPU
# to be the bottleneck: without the encodings (--compress none
# --delta-cache 0), with them adaptive (the default) and with them pinned
# on (--encodings fixed). Prints each move's total time and bytes and the
# ratios to the move without encodings (issue: adaptive no more than 5 %
# slower there; a figure, not a verdict). Each move must commit, the guest
# verify after it (depmig_check_moved). Not in the default run.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
G=guest
# Total time is the figure: no page comparison while the guest is down.
DEPMIG_VERIFY=0
guest_start $G ticker,mmuncher 256 depmig.mib=16 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the moves"; }

# field REPORT KEY: a number of a compact JSON report's top level.
field() { grep -o "\"$2\": *[0-9]*" "$1" | head -n 1 | sed 's/.*: *//'; }

summary=
for run in raw adaptive fixed; do
    case $run in
        raw) opts="--compress none --delta-cache 0" ;;
        adaptive) opts= ;;
        fixed) opts="--encodings fixed" ;;
    esac
    src=$(rig_domid $G)
    ticks=$(guest_ticks $G)
    rig_say "encodings $run: migrating $G (domid $src) at $DEPMIG_LINK_RATE ${opts:+($opts)}"
    # shellcheck disable=SC2086 # opts is a word list
    depmig_migrate_retrying $G /tmp/$run.json /tmp/$run.svg --scenario encodings-fast \
        --workload mmuncher-16MiB --timeout 1200 $opts
    rc=$?
    [ -f /tmp/$run.json ] && rig_export /tmp/$run.json encodings-$run.json
    [ "$rc" = 0 ] || { guest_dump $G; xl list; rig_fail "$run: depmig migrate failed (status $rc): $(tail -n 1 /tmp/$G.depmig.log)"; }
    depmig_check_moved $G "$src" "$ticks"
    eval "t_$run=$(field /tmp/$run.json total_time_ms) b_$run=$(field /tmp/$run.json stream_bytes)"
    eval "rig_say \"encodings $run: total_time_ms=\$t_$run stream_bytes=\$b_$run\""
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
summary="raw ${t_raw} ms ${b_raw} B; adaptive ${t_adaptive} ms ${b_adaptive} B (time $(ratio "$t_adaptive" "$t_raw")x, bytes $(ratio "$b_adaptive" "$b_raw")x raw); fixed ${t_fixed} ms ${b_fixed} B (time $(ratio "$t_fixed" "$t_raw")x, bytes $(ratio "$b_fixed" "$b_raw")x raw)"
rig_result PASS "3 moves at $DEPMIG_LINK_RATE, guest verified after each: $summary"
