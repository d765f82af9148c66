#!/bin/sh
# appliance-selftest: the appliance image boots as a PVH domU under the rig's
# Xen and passes its self-test (hypercall page, version, PV console,
# shared_info, event channels, timer, xenstore, grant table): the last line
# of its console is "depmig-selftest: PASS" and the domain powers itself off.
# Then the deliberate crash mode must leave an epitaph, end with a FAIL line
# and shut the domain down as crashed.
. /rig/lib.sh

up() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
nap=0.1
sleep "$nap" 2>/dev/null || nap=1

# run_domain NAME CFG: xl create, then wait (180 s of dom0 uptime at most) for
# the result line. Sets T0, T_CREATED, T_FIRST, T_RESULT; the console ends up
# in /tmp/NAME.log (also echoed and exported).
run_domain() {
    local name=$1 cfg=$2 con end
    con=$(rig_console_log "$name")
    T0=$(up)
    xl create "$cfg" > /tmp/create.out 2>&1 \
        || { cat /tmp/create.out; rig_fail "xl create $name failed: $(tail -n 1 /tmp/create.out)"; }
    T_CREATED=$(up)
    rig_say "xl create $name returned after $(since "$T0" "$T_CREATED") s"
    T_FIRST= T_RESULT=
    end=$(awk -v a="$T0" 'BEGIN { print a + 180 }')
    while awk -v n="$(up)" -v e="$end" 'BEGIN { exit !(n < e) }'; do
        if [ -z "$T_FIRST" ] && [ -s "$con" ]; then T_FIRST=$(up); fi
        if rig_console_text "$name" | grep -E '^depmig-selftest: (PASS|FAIL)' > /dev/null; then T_RESULT=$(up); break; fi
        sleep "$nap"
    done
    rig_console_text "$name" > "/tmp/$name.log"
    sed "s/^/DEPMIG-LOG $name| /" "/tmp/$name.log"
    rig_export "/tmp/$name.log" "$name-console.log"
    [ -n "$T_RESULT" ] || { xl destroy "$name" 2>/dev/null
        rig_fail "$name: no result line within 180 s (console: $(tail -n 1 "/tmp/$name.log"))"; }
}

last_line() { grep -v '^[[:space:]]*$' "/tmp/$1.log" | tail -n 1; }

# 1. The self-test passes and the domain powers itself off.
run_domain depmig-selftest /scenario/appliance-selftest.cfg
rig_wait_gone depmig-selftest 60 || { xl destroy depmig-selftest 2>/dev/null
    rig_fail "depmig-selftest did not shut itself down"; }
rig_json timing "{\"create_s\":$(since "$T0" "$T_CREATED"),\"first_line_s\":$(since "$T0" "${T_FIRST:-$T_RESULT}"),\"result_s\":$(since "$T0" "$T_RESULT")}"
first=$(since "$T0" "${T_FIRST:-$T_RESULT}")
last=$(last_line depmig-selftest)
[ "$last" = "depmig-selftest: PASS" ] || rig_fail "appliance self-test: $last: $(grep -m 3 'FAILED:' /tmp/depmig-selftest.log | sed 's/.*check /check /' | tr '\n' ';')"

# 2. A crash leaves an epitaph and a FAIL line and shuts down as crashed.
run_domain depmig-crashtest /scenario/appliance-crashtest.cfg
last=$(last_line depmig-crashtest)
case $last in
    "depmig-selftest: FAIL crash: CPU exception 14 "*) ;;
    *) xl destroy depmig-crashtest 2>/dev/null; rig_fail "crashtest ended with: $last" ;;
esac
grep -q '^depmig: EPITAPH: CPU exception 14 ' /tmp/depmig-crashtest.log \
    || { xl destroy depmig-crashtest 2>/dev/null; rig_fail "crashtest printed no epitaph"; }
state= i=0
while [ "$i" -lt 30 ]; do
    state=$(xl list depmig-crashtest 2>/dev/null | awk '$1 == "depmig-crashtest" { print $5 }')
    case $state in *c*) break ;; esac
    sleep 1; i=$((i + 1))
done
xl destroy depmig-crashtest 2>/dev/null
rig_wait_gone depmig-crashtest 60 || rig_fail "depmig-crashtest is still there after destroy"
case $state in *c*) ;; *) rig_fail "crashtest domain state is '$state', not crashed" ;; esac

clock=$(grep -m 1 'check clock: ok' /tmp/depmig-selftest.log | sed 's/.*check clock: ok (//; s/)$//')
rig_result PASS "appliance self-test passed under Xen (first console line ${first} s after xl create started; clock ${clock:-not reported}); crash path: epitaph, FAIL line, domain crashed"
