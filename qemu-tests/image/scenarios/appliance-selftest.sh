#!/bin/sh
# appliance-selftest: the appliance image boots as a PVH domU under the rig's
# Xen and passes its self-test (hypercall page, version, PV console,
# shared_info, event channels, timer, xenstore, grant table): the last line
# of its console is "depmig-selftest: PASS" and the domain powers itself off.
. /rig/lib.sh

name=depmig-selftest
con=$(rig_console_log "$name")
up() { cut -d' ' -f1 /proc/uptime; }

t0=$(up)
xl create /scenario/appliance-selftest.cfg > /tmp/create.out 2>&1 \
    || { cat /tmp/create.out; rig_fail "xl create failed: $(tail -n 1 /tmp/create.out)"; }
t_created=$(up)
rig_say "xl create returned after $(awk -v a="$t0" -v b="$t_created" 'BEGIN { print b - a }') s"

# Poll the console log for the first line and for the result line.
# A bounded wait (180 s of dom0 uptime); sub-second sleeps where busybox has them.
t_first= t_result=
end=$(awk -v a="$t0" 'BEGIN { print a + 180 }')
nap=0.1
sleep "$nap" 2>/dev/null || nap=1
while awk -v n="$(up)" -v e="$end" 'BEGIN { exit !(n < e) }'; do
    if [ -z "$t_first" ] && [ -s "$con" ]; then t_first=$(up); fi
    if grep -Eq '^depmig-selftest: (PASS|FAIL)' "$con" 2>/dev/null; then t_result=$(up); break; fi
    sleep "$nap"
done
rig_wait_gone "$name" 60; gone=$?
tr -d '\r' < "$con" > /tmp/console.log 2>/dev/null || : > /tmp/console.log
sed 's/^/DEPMIG-LOG domU| /' /tmp/console.log
rig_export /tmp/console.log appliance-console.log

[ -n "$t_result" ] || rig_fail "no result line within 180 s (console: $(tail -n 1 /tmp/console.log))"
[ "$gone" = 0 ] || { xl destroy "$name" 2>/dev/null; rig_fail "the domain did not shut itself down"; }
rig_json timing "{\"create_s\":$(awk -v a="$t0" -v b="$t_created" 'BEGIN { print b - a }'),\"first_line_s\":$(awk -v a="$t0" -v b="${t_first:-$t_result}" 'BEGIN { print b - a }'),\"result_s\":$(awk -v a="$t0" -v b="$t_result" 'BEGIN { print b - a }')}"
last=$(grep -v '^[[:space:]]*$' /tmp/console.log | tail -n 1)
case $last in
    "depmig-selftest: PASS")
        rig_result PASS "appliance self-test passed under Xen (first console line $(awk -v a="$t0" -v b="${t_first:-$t_result}" 'BEGIN { print b - a }') s after xl create started)" ;;
    *) rig_fail "appliance self-test: $last" ;;
esac
