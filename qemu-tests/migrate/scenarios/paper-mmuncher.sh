#!/bin/sh
# paper-mmuncher (and paper-http, a link to it): the paper's figures, one run,
# one guest. The same 256 MiB guest, running guest-lsm's taint tracker, is
# live-migrated four times in a row over links held to the same rate: stock
# `xl migrate`, then depmig's appliances in dependency-aware, paper-analysis
# and baseline mode. `depmig compare` puts the four reports side by side
# (pages per round as a table and a log-scale plot in the manner of the
# paper's Figures 3 and 4, downtime, total time, the targets).
#
# paper-mmuncher: the guest runs the ticker (console: tainted) and the
# paper's memory-dirtying program, an mmuncher rewriting 32 MiB that talks to
# nobody (untainted; its state is read from its process name, see
# rig-guest.sh). paper-http: the guest downloads a long HTTP stream from dom0
# and serves HTTP that dom0 probes (both tainted); the download's connection
# must survive every migration.
#
# Verdicts, each can fail: every migration commits and the guest runs on the
# destination (one copy, source and helpers gone, the mmuncher verifies two
# more passes, the ticker goes on; paper-http: the download goes on on the
# same connection); the agent re-publishes in each new domain;
# paper-analysis counts per-round dirty-and-tainted pages never above dirty
# ones (paper-mmuncher: fewer, after round 1: the writer's pages); the
# dependency-aware migration froze the writer's group (paper-mmuncher) and the
# migrated guest's agent thawed what was frozen. The targets are figures,
# printed with the comparison, not verdicts.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
. /scenario/migrate.sh
# The comparison is of downtime: no page comparison inside it (see
# depmig_migrate; migrate-paper-da moves the same guest verified).
DEPMIG_VERIFY=0
G=guest
S=${DEPMIG_SCENARIO:-paper-mmuncher}
case $S in
    paper-http) KIND=http WL=ticker,httpdl,httpd WORKLOAD=httpdl+httpd GUEST_MUNCHER=none ;;
    *) KIND=mmuncher WL=ticker WORKLOAD=quiet-mmuncher-32MiB GUEST_MUNCHER=quiet ;;
esac
export GUEST_MUNCHER

if [ $KIND = http ]; then
    /scenario/bin/wlhttp serve-stream --port 8080 >/tmp/stream-server.log 2>&1 &
fi
guest_start $G $WL 256 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
src=$(rig_domid $G)
[ -n "$src" ] || rig_fail "no domid for $G"
depmig_wait_agent $G /local/domain/$src/data/depmig
rig_say "agent tracking after ${AGENT_WAITED} s more"
if [ $KIND = http ]; then
    rig_wait_console $G 'httpdl: bytes=[1-9]' 300 || { guest_dump $G; rig_fail "the download never started"; }
    echo before > /tmp/phase
    /scenario/bin/wlhttp probe --url "http://$GUEST_IP/" --phase-file /tmp/phase --out /tmp/probe.json \
        --interval-ms 250 --timeout-ms 3000 --max-secs 3000 > /tmp/probe.log 2>&1 &
    sleep 15
else
    guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "the quiet mmuncher did not verify 2 passes before the migrations"; }
fi

# after_move LABEL SRC TICKS: the checks every migration must pass.
after_move() {
    local b0 b1
    depmig_check_moved $G "$2" "$3"
    if [ $KIND = http ]; then
        b0=$(guest_dl_bytes $G)
        sleep 10
        b1=$(guest_dl_bytes $G)
        [ "$b1" -gt "$b0" ] || rig_fail "$1: the download made no progress after the migration ($b0 -> $b1 bytes)"
        guest_grep $G 'httpdl: ERROR' >/dev/null && rig_fail "$1: the download's connection broke: $(guest_grep $G 'httpdl: ERROR' | head -n 1)"
        guest_grep $G 'CORRUPT' >/dev/null && rig_fail "$1: the download saw corrupt data"
        rig_say "$1: download $b0 -> $b1 bytes over 10 s after it, same connection"
    fi
}

# 1. Stock xl migrate.
ticks=$(guest_ticks $G)
[ $KIND = http ] && echo during-stock > /tmp/phase
rig_say "stock: migrating $G (domid $src, mmuncher pass $(guest_passes $G), ticker $ticks) at $DEPMIG_LINK_RATE"
baseline_migrate $G $S-stock $WORKLOAD /tmp/stock.json
rc=$?
[ $KIND = http ] && echo after-stock > /tmp/phase
[ "$rc" = 0 ] || { cat /tmp/$G.migrate.log; rig_fail "stock xl migrate failed (status $rc): $(tail -n 1 /tmp/$G.migrate.log)"; }
rig_wait_gone "$G--migratedaway" 60 || rig_fail "the stock migration's source is still there"
[ -f /tmp/stock.json ] || rig_fail "migpipe wrote no report"
rig_export /tmp/stock.json $S-stock.json
rig_json stock "$(tr -d '\n' < /tmp/stock.json)"
rig_say "stock xl migrate: $(baseline_summary /tmp/stock.json) migrate=${MIGRATE_SECONDS}s"
after_move stock "$src" "$ticks"

# 2-4. depmig, mode by mode (the dependency-aware one first: the headline).
# An appliance that dies mid-stream (the rig's open triple fault, see
# qemu-tests/README.md) rolls the migration back; that must leave the guest
# running at the source, which is checked, and the mode is tried once more.
# The result line counts such retries.
retries=
for mode in dependency-aware paper-analysis baseline; do
    attempt=1
    while :; do
        src=$(rig_domid $G)
        # The agent publishes again in every new domain's home.
        depmig_wait_agent $G /local/domain/$src/data/depmig
        ticks=$(guest_ticks $G)
        [ $KIND = http ] && echo "during-$mode" > /tmp/phase
        rig_say "depmig $mode: migrating $G (domid $src, mmuncher pass $(guest_passes $G), ticker $ticks), attempt $attempt"
        depmig_migrate $G /tmp/$mode.json /tmp/$mode.svg --mode $mode --timeout 3000 \
            --scenario $S --workload $WORKLOAD --baseline-report /tmp/stock.json
        rc=$?
        [ $KIND = http ] && echo "after-$mode" > /tmp/phase
        # Each attempt's report under its own name (an export name is unique).
        [ -f /tmp/$mode.json ] && rig_export /tmp/$mode.json $S-$mode-attempt$attempt.json
        if [ $mode != baseline ]; then
            grep -a 'guest survey\|oracle\|guest agent\|census' "$(rig_console_log $G--depmig-src)" 2>/dev/null | tail -n 14 |
                while IFS= read -r l; do rig_say "source| $l"; done
        fi
        [ "$rc" = 0 ] && break
        if [ $attempt = 1 ] && depmig_appliance_died $G "$rc"; then
            rig_say "depmig $mode: attempt 1 rolled back ($(tail -n 1 /tmp/$G.depmig.log)); checking the guest runs on at the source, then once more"
            depmig_check_stayed $G "$src" "$ticks"
            retries="$retries $mode"
            attempt=2
            continue
        fi
        guest_dump $G; xl list
        rig_fail "depmig $mode ended with status $rc (attempt $attempt): $(tail -n 1 /tmp/$G.depmig.log)"
    done
    [ -f /tmp/$mode.json ] || rig_fail "depmig $mode wrote no report"
    rig_json "$mode" "$(tr -d '\n' < /tmp/$mode.json)"
    rig_say "depmig $mode: $(depmig_summary /tmp/$mode.json) cli=${MIGRATE_SECONDS}s"
    after_move "depmig $mode" "$src" "$ticks"
    if [ $mode = dependency-aware ]; then
        # What was frozen, and the thaw in the migrated guest (read now: the
        # next move leaves the status behind in this domain's home).
        frozen=$(grep -o '"frozen_groups": *[0-9]*' /tmp/$mode.json | head -n 1 | sed 's/.*: *//')
        if [ $KIND = mmuncher ]; then
            [ "${frozen:-0}" -ge 1 ] || rig_fail "the dependency-aware source froze no group (frozen_groups=${frozen:-missing})"
        fi
        status=$(xenstore-read /local/domain/$(rig_domid $G)/data/depmig/status 2>/dev/null)
        thawed=$(echo "$status" | sed -n 's/^[0-9]* thawed \([0-9]*\)$/\1/p')
        [ -n "$thawed" ] || rig_fail "the migrated guest's agent status is '$status', want '<seq> thawed N'"
        [ "${frozen:-0}" -ge 1 ] && [ "$thawed" -lt 1 ] && rig_fail "frozen_groups=$frozen but the agent thawed $thawed"
        rig_say "dependency-aware: frozen_groups=$frozen, thawed after resume: $thawed; skipped free=[$(json_list /tmp/$mode.json per_round_skipped_free)]"
    fi
done
args="depmig-baseline=/tmp/baseline.json depmig-paper-analysis=/tmp/paper-analysis.json depmig-dependency-aware=/tmp/dependency-aware.json"

# The paper's measurement: dirty-and-tainted never above dirty.
dirty=$(json_list /tmp/paper-analysis.json per_round_dirty)
tainted=$(json_list /tmp/paper-analysis.json per_round_dirty_tainted)
verdict=$(awk -v d="$dirty" -v t="$tainted" 'BEGIN {
    n = split(d, D, ","); m = split(t, T, ",")
    if (n != m || n < 2) { print "bad lengths " n " " m; exit }
    for (i = 1; i <= n; i++) if (T[i] + 0 > D[i] + 0) { print "round " i " tainted " T[i] " > dirty " D[i]; exit }
    for (i = 2; i <= n; i++) if (T[i] + 0 < D[i] + 0) fewer++
    print "ok " fewer + 0
}')
case $verdict in ok*) ;; *) rig_fail "paper-analysis figures: $verdict (dirty=[$dirty] dirty_tainted=[$tainted])" ;; esac
if [ $KIND = mmuncher ] && [ "${verdict#ok }" = 0 ]; then
    rig_fail "paper-analysis counted every dirty page after round 1 tainted (dirty=[$dirty] dirty_tainted=[$tainted]): the writer's pages were not told apart"
fi
# Whose they are (the appliance's census): pages of tainted processes alone.
procs=$(json_list /tmp/paper-analysis.json user)
rig_say "paper-analysis: dirty=[$dirty] dirty_tainted=[$tainted] of tainted processes=[${procs:-no census}]"

# Side by side.
if [ $KIND = http ]; then
    echo stop > /tmp/phase
    i=0
    while [ ! -f /tmp/probe.json ] && [ $i -lt 30 ]; do sleep 1; i=$((i + 1)); done
    [ -f /tmp/probe.json ] && { rig_export /tmp/probe.json $S-probe.json; rig_json probe "$(tr -d '\n' < /tmp/probe.json)"; }
    grep '^probe: phase=' /tmp/probe.log | while IFS= read -r l; do rig_say "$l"; done
fi
# shellcheck disable=SC2086
"$DEPMIG" compare --title "$S: pages sent per round (256 MiB guest, $DEPMIG_LINK_RATE)" \
    --guest-pages 65536 --svg /tmp/$S.svg --markdown /tmp/$S.md --json /tmp/$S-compare.json \
    stock-xl=/tmp/stock.json $args >/tmp/compare.log 2>&1 || { cat /tmp/compare.log; rig_fail "depmig compare failed: $(tail -n 1 /tmp/compare.log)"; }
for f in $S.svg $S.md $S-compare.json; do rig_export /tmp/$f $f; done
while IFS= read -r l; do rig_say "| $l"; done < /tmp/$S.md
rig_json compare "$(tr -d '\n' < /tmp/$S-compare.json)"
targets=$(grep -o '"[a-z0-9_]*":{"met":[a-z]*' /tmp/$S-compare.json | sed 's/"\([a-z0-9_]*\)":{"met":/\1=/' | tr '\n' ' ')
rig_result PASS "4 migrations, guest verified after each (appliance deaths retried:${retries:- none}); stock $(jnum /tmp/stock.json total_pages) pages, depmig baseline $(depmig_summary /tmp/baseline.json | cut -d' ' -f2), paper-analysis dirty_tainted=[$tainted] of tainted processes=[${procs:-no census}], dependency-aware $(depmig_summary /tmp/dependency-aware.json) frozen=$frozen thawed=$thawed; targets: $targets"
