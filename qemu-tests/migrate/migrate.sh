# dom0-side helpers of the depmig migration scenarios (installed as
# /scenario/migrate.sh; source after /rig/lib.sh, /scenario/rig-guest.sh and
# /scenario/baseline.sh).

DEPMIG=/scenario/bin/depmig
DEPMIG_IMAGE=/scenario/depmig-appliance

# depmig_migrate NAME REPORT SVG [OPTIONS...]: live-migrate NAME with depmig's
# appliances, their vifs limited to the scenario's link rate; the CLI's output
# goes to /tmp/NAME.depmig.log and its progress lines to the console. Returns
# the CLI's status; MIGRATE_SECONDS is set. `qemu-tests/run.sh` passes
# DEPMIG_MIGRATE_ARGS to every such move. Every move compares the guest
# page by page (--verify; depmig_check_moved then requires a match) unless
# the scenario sets DEPMIG_VERIFY=0: the paper comparisons do, because the
# comparison's figure is the downtime, and verification runs while the
# guest is down.
depmig_migrate() {
    local name=$1 report=$2 svg=$3 t0 rc pid shown n verify=--verify
    shift 3
    case " $* $DEPMIG_MIGRATE_ARGS " in *" --verify "*) verify= ;; esac
    [ "${DEPMIG_VERIFY:-1}" = 0 ] && verify=
    t0=$(cut -d' ' -f1 /proc/uptime)
    "$DEPMIG" migrate "$name" --config "/tmp/$name.cfg" --appliance "$DEPMIG_IMAGE" \
        --report "$report" --svg "$svg" ${DEPMIG_LINK_RATE:+--rate "$DEPMIG_LINK_RATE"} "$@" \
        $verify $DEPMIG_MIGRATE_ARGS \
        >"/tmp/$name.depmig.log" 2>&1 &
    pid=$!
    shown=0
    while kill -0 "$pid" 2>/dev/null; do
        sleep 3
        n=$(wc -l < "/tmp/$name.depmig.log")
        if [ "$n" -gt "$shown" ]; then
            sed -n "$((shown + 1)),${n}p" "/tmp/$name.depmig.log" | while IFS= read -r l; do rig_say "depmig| $l"; done
            shown=$n
        fi
    done
    wait "$pid"
    rc=$?
    sed -n "$((shown + 1)),\$p" "/tmp/$name.depmig.log" | while IFS= read -r l; do rig_say "depmig| $l"; done
    MIGRATE_SECONDS=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }')
    return "$rc"
}

# depmig_appliance_died NAME STATUS: 0 when the depmig migration of NAME
# that ended with STATUS was rolled back (status 1, not migrated) because of
# the rig rather than depmig: an appliance crashed or stopped without a
# result (the triple fault), or the two appliances' vifs, both connected to
# their backends, never carried a connection (seen once in about thirty
# moves: neither end heard the other for the whole connect deadline), or
# xl could not create a domain because the vif's hotplug script timed out
# (libxl's "unable to add vif devices", rc -9: seen when the machine running
# the rig was loaded by other work; depmig then created nothing and the
# guest runs on). For the latter two it prints what dom0's kernel said
# about vifs and the bridge.
depmig_appliance_died() {
    [ "$2" = 1 ] || return 1
    grep -q 'appliance \(crashed\|stopped\)' "/tmp/$1.depmig.log" && return 0
    if grep -q 'not migrated, guest runs at the source: xl create .*unable to add vif devices' "/tmp/$1.depmig.log"; then
        dmesg | grep -i -E 'vif|xenbr|bridge' | tail -n 12 | while IFS= read -r l; do rig_say "dmesg| $l"; done
        return 0
    fi
    if grep -q 'source appliance: FAIL connecting to the destination: no connection before the deadline' "/tmp/$1.depmig.log"; then
        dmesg | grep -i -E 'vif|xenbr|bridge' | tail -n 12 | while IFS= read -r l; do rig_say "dmesg| $l"; done
        return 0
    fi
    return 1
}

# depmig_migrate_retrying NAME REPORT SVG [OPTIONS...]: depmig_migrate, and
# when that attempt was rolled back because of the rig (an appliance died:
# the open triple fault under emulated nested paging, see
# qemu-tests/README.md; or the appliances' link never came up):
# checks that the guest runs on at the source with nothing left behind
# (depmig_check_stayed, which fails the scenario otherwise) and tries once
# more. DEPMIG_RETRIED is 1 after a retry, else 0. Returns the status of
# the last attempt.
depmig_migrate_retrying() {
    depmig_migrate_retrying_unless '' "$@"
}

# depmig_migrate_retrying_unless PATTERN NAME REPORT SVG [OPTIONS...]: the
# same for a move that is meant to be refused (a fault scenario): no retry
# when the CLI's log holds a line matching PATTERN (the refusal the move
# was meant to end in), whatever else died on the way.
depmig_migrate_retrying_unless() {
    local pattern=$1 name=$2 src ticks rc
    shift
    DEPMIG_RETRIED=0
    src=$(rig_domid "$name")
    ticks=$(guest_ticks "$name")
    depmig_migrate "$@"
    rc=$?
    if { [ -z "$pattern" ] || ! grep -qE "$pattern" "/tmp/$name.depmig.log"; } \
        && depmig_appliance_died "$name" "$rc"; then
        rig_say "depmig: attempt 1 rolled back ($(tail -n 1 "/tmp/$name.depmig.log")); checking the guest runs on at the source, then once more"
        depmig_check_stayed "$name" "$src" "$ticks"
        DEPMIG_RETRIED=1
        depmig_migrate "$@"
        rc=$?
    fi
    return "$rc"
}

# depmig_check_moved NAME SRC_DOMID TICKS_BEFORE: after a depmig migration,
# exactly one domain NAME runs, it is not SRC_DOMID, SRC_DOMID is gone, the
# CLI reported the page comparison a match when the move ran with --verify,
# no shell or appliance is left, mmuncher verifies two more passes with no
# corrupt page and the ticker advanced past TICKS_BEFORE. Fails the scenario
# otherwise.
depmig_check_moved() {
    local name=$1 src=$2 ticks=$3 dst after gap left verified
    dst=$(rig_domid "$name")
    [ -n "$dst" ] && [ "$dst" != "$src" ] || rig_fail "no destination domain named $name (source was $src, now '$dst')"
    [ "$(xl list | awk -v n="$name" 'NR > 1 && $1 == n' | wc -l)" = 1 ] || rig_fail "more than one domain named $name"
    xl list | awk -v s="$src" 'NR > 1 && $2 == s { found = 1 } END { exit !found }' && rig_fail "source domid $src still listed"
    # With --verify, every page was compared before the destination
    # acknowledged, and none may differ.
    if grep -a 'depmig: armed: ' "/tmp/$name.depmig.log" | grep -q 'page verification on'; then
        verified=$(grep -a 'depmig: page verification: ' "/tmp/$name.depmig.log" | tail -n 1)
        case $verified in
            "depmig: page verification: match;"*) rig_say "${verified#depmig: }" ;;
            *) rig_fail "the move was not verified page by page: '${verified:-no page verification line}'" ;;
        esac
    fi
    left=$(rig_domains | grep -v -x "$name" | tr '\n' ' ')
    [ -z "$left" ] || rig_fail "domains left after the migration: $left"
    # Running means neither paused, shut down, crashed nor dying: a vCPU
    # that waits for a CPU shows as "------", neither r nor b.
    xl list "$name" | awk 'NR == 2 { exit !($5 !~ /[pscd]/) }' || rig_fail "$name is not running on the destination: $(xl list "$name" | tail -n 1)"
    # GUEST_MUNCHER=none: a guest without mmuncher (its workloads are checked
    # by the scenario).
    [ "${GUEST_MUNCHER:-}" = none ] || {
    after=$(guest_passes "$name")
    guest_wait_passes "$name" $((after + 2)) 400 || { guest_dump "$name"; rig_fail "mmuncher did not verify two passes after the migration (at $(guest_passes "$name"), wanted $((after + 2)))"; }
    guest_corrupt "$name" && rig_fail "mmuncher: $(guest_grep "$name" 'CORRUPT|quiet: (q[0-9]+ BAD|gone)' | head -n 1)"
    }
    [ "$(guest_ticks "$name")" -gt "$ticks" ] || rig_fail "the ticker did not advance after the migration"
    gap=$(guest_grep "$name" 'ticker: .*gap_ms=' | sed 's/.*gap_ms=\([0-9]*\).*/\1/' | sort -n | tail -n 1)
    rig_say "ticker's longest gap: ${gap:-none} ms; mmuncher at pass $(guest_passes "$name")"
}

# depmig_summary REPORT: the headline figures of a depmig report (compact
# JSON, unlike migpipe's indented one).
depmig_summary() {
    local f=$1 k out=
    for k in rounds total_pages downtime_ms total_time_ms; do
        out="$out $k=$(grep -o "\"$k\": *[0-9.]*" "$f" | head -n 1 | sed 's/.*: *//')"
    done
    echo "${out# } pages=[$(json_list "$f" per_round_pages)]"
}

# json_list FILE KEY: the numbers of a compact JSON report's array KEY,
# comma separated.
json_list() {
    grep -o "\"$2\": *\[[0-9, ]*\]" "$1" | head -n 1 | sed 's/.*\[//; s/\]//; s/ //g'
}

# depmig_wait_agent NAME HOME: waits (900 s at most) until guest NAME's
# guest-lsm agent publishes state=tracking under HOME (its data/depmig);
# fails the scenario if the agent reports an error or never gets there.
# AGENT_WAITED is set to the seconds waited.
depmig_wait_agent() {
    local name=$1 home=$2 err
    AGENT_WAITED=0
    while [ "$(xenstore-read "$home/state" 2>/dev/null)" != tracking ]; do
        err=$(guest_grep "$name" 'depmig-lsm-agent: error' | head -n 1)
        [ -n "$err" ] && { guest_dump "$name"; rig_fail "agent refused: $err"; }
        [ "$AGENT_WAITED" -ge 900 ] && { guest_dump "$name"; guest_grep "$name" '^hook: ' | tail -n 20; rig_fail "the agent did not publish state=tracking within 900 s"; }
        sleep 2; AGENT_WAITED=$((AGENT_WAITED + 2))
    done
}

# depmig_check_stayed NAME SRC_DOMID TICKS_BEFORE: after a depmig migration
# that failed, NAME still runs as SRC_DOMID (not paused, not suspended), it
# is the only domain left (no shell, no appliance, no dying zombie of
# either), mmuncher verifies one more pass with no corrupt page and the
# ticker advanced past TICKS_BEFORE. Fails the scenario otherwise.
depmig_check_stayed() {
    local name=$1 src=$2 ticks=$3 now after left i=0
    now=$(rig_domid "$name")
    [ "$now" = "$src" ] || rig_fail "$name is domain '$now', not the source $src"
    [ "$(xl list | awk -v n="$name" 'NR > 1 && $1 == n' | wc -l)" = 1 ] || rig_fail "more than one domain named $name"
    # Helper domains may still be on their way out: give them a moment.
    while :; do
        left=$(rig_domains | grep -v -x "$name" | tr '\n' ' ')
        [ -z "$left" ] && break
        i=$((i + 1))
        [ "$i" -lt 30 ] || rig_fail "domains left after the failed migration: $left"
        sleep 2
    done
    xl list "$name" | awk 'NR == 2 { exit !($5 !~ /[pscd]/) }' || rig_fail "$name is not running at the source: $(xl list "$name" | tail -n 1)"
    [ "${GUEST_MUNCHER:-}" = none ] || {
    after=$(guest_passes "$name")
    guest_wait_passes "$name" $((after + 1)) 400 || { guest_dump "$name"; rig_fail "mmuncher did not verify a pass after the failed migration (at $(guest_passes "$name"))"; }
    guest_corrupt "$name" && rig_fail "mmuncher: $(guest_grep "$name" 'CORRUPT|quiet: (q[0-9]+ BAD|gone)' | head -n 1)"
    }
    [ "$(guest_ticks "$name")" -gt "$ticks" ] || rig_fail "the ticker did not advance after the failed migration"
}

# depmig_install: depmig where an operator would put it (the command on
# PATH, the appliance image at `depmig receive`'s default path).
depmig_install() {
    mkdir -p /usr/lib/depmig
    ln -sf /scenario/depmig-appliance /usr/lib/depmig/depmig-appliance
    ln -sf /scenario/bin/depmig /usr/bin/depmig
}

# depmig_wait_host_b HOST: in a two-host scenario, waits until the other
# dom0 answers ping and then ssh with depmig installed (its .hostb part);
# fails the scenario after 600 s and 60 ssh tries.
depmig_wait_host_b() {
    local i=0
    rig_wait_peer 600
    until ssh "$1" 'test -x /usr/bin/depmig && test -e /usr/lib/depmig/depmig-appliance' 2>/tmp/ssh.err; do
        i=$((i + 1)); [ "$i" -lt 60 ] || rig_fail "host b never had depmig installed (ssh: $(tail -n 1 /tmp/ssh.err))"
        sleep 2
    done
    rig_say "host a: host b ($1) answers ssh and has depmig"
}
