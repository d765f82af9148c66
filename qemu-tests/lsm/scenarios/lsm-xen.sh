#!/bin/sh
# lsm-xen: the guest-lsm taint tracker in a real Xen guest (PVH, shadow
# paging, labelled depmig_guest_t). Verdicts, each of which can fail:
#  1. the agent starts with bpf an active LSM and publishes under the guest's
#     xenstore data/depmig/ version 1, state=tracking, table-pages 322 and
#     table/profile frames that lie inside the guest's memory and agree with
#     the frame list it prints;
#  2. dom0 asks for a dump window through xenstore, maps all 322 published
#     frames inside the window (foreignmap --fnv) and every page's FNV-1a
#     digest equals the guest's own; page 0 starts DMTAINT1 and lists its
#     own frames, page 1 starts DMPROF01 and its release string,
#     sizes and addresses are the guest's (init_task, found through the
#     profile's phys_base and comm offset, is named swapper);
#  3. freeze/thaw through xenstore: a quiet untainted process is frozen (the
#     agent's reply, the kernel's cgroup.events seen by a watcher in the
#     guest, the FROZEN mark seen from dom0) while a tainted one keeps
#     running, then thawed back into its cgroup; frozen again, a signal from
#     the tainted watcher thaws and taints it.
. /rig/lib.sh
. /scenario/rig-guest.sh
G=lsm
T=/tmp/lsm
mkdir -p $T

elapsed() { awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.1f", b - a }'; }
die() { guest_dump $G; rig_fail "$*"; }

t0=$(cut -d' ' -f1 /proc/uptime)
guest_start $G "" 512 || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
rig_wait_console $G 'guest: ready' 300 || die "guest init never became ready"
lsm=$(guest_grep $G 'guest: init:' | sed -n 's/.*lsm \([^ ]*\).*/\1/p' | head -n 1)
krel=$(guest_grep $G 'guest: init:' | sed -n 's/.*kernel \([^,]*\),.*/\1/p' | head -n 1)
case ,$lsm, in *,bpf,*) ;; *) die "bpf not among the guest's LSMs ($lsm)" ;; esac

# --- 1. start-up and publication -------------------------------------------
# The agent prints "tracking" once published, then its frame list (one long
# line: wait until all of it reached the console log).
i=0
while :; do
    frames=$(guest_grep $G 'depmig-lsm: frames ' | tail -n 1 | sed 's/.*depmig-lsm: frames //' | tr -d ' ')
    [ "$(echo "$frames" | tr ',' '\n' | grep -c .)" -ge 322 ] && guest_grep $G 'depmig-lsm: tracking' >/dev/null && break
    err=$(guest_grep $G 'depmig-lsm-agent: error' | head -n 1)
    [ -n "$err" ] && die "agent refused: $err"
    [ "$i" -ge 300 ] && die "agent never reported tracking and its frames"
    sleep 1; i=$((i + 1))
done
t_tracking=$(elapsed)
domid=$(rig_domid $G)
[ -n "$domid" ] || die "no domid for $G"
home=/local/domain/$domid/data/depmig
xs() { xenstore-read "$home/$1" 2>/dev/null; }
version=$(xs version) state=$(xs state) tgfn=$(xs table-gfn) pgfn=$(xs profile-gfn) npages=$(xs table-pages)
rig_say "xenstore $home: version=$version state=$state table-gfn=$tgfn table-pages=$npages profile-gfn=$pgfn"
[ "$version" = 1 ] || die "data/depmig/version is '$version', want 1"
[ "$state" = tracking ] || die "data/depmig/state is '$state', want tracking"
[ "$npages" = 322 ] || die "data/depmig/table-pages is '$npages', want 322"
case $tgfn in 0x[0-9a-f]*) ;; *) die "table-gfn '$tgfn' is not a hex frame number" ;; esac
case $pgfn in 0x[0-9a-f]*) ;; *) die "profile-gfn '$pgfn' is not a hex frame number" ;; esac
maxkib=$(xenstore-read /local/domain/$domid/memory/static-max 2>/dev/null)
[ -n "$maxkib" ] || die "no memory/static-max for domain $domid"
limit=$((maxkib / 4))
# The agent's start-up line lists every table page's frame, page 0 first.
echo "$frames" | tr ',' '\n' | grep . > $T/frames
nfr=$(wc -l < $T/frames)
[ "$nfr" -eq 322 ] || die "the agent printed $nfr frames, want 322"
[ "$(sort -u $T/frames | wc -l)" -eq 322 ] || die "the published frames are not distinct"
bad=0
while read -r f; do
    case $f in *[!0-9a-f]*|'') bad=$((bad + 1)); continue ;; esac
    [ $((0x$f)) -gt 0 ] && [ $((0x$f)) -lt "$limit" ] || bad=$((bad + 1))
done < $T/frames
[ "$bad" -eq 0 ] || die "$bad published frames outside the guest's $limit frames"
[ $((0x$(sed -n 1p $T/frames))) -eq $((tgfn)) ] || die "table-gfn $tgfn is not the first listed frame"
[ $((0x$(sed -n 2p $T/frames))) -eq $((pgfn)) ] || die "profile-gfn $pgfn is not the second listed frame"
agent_pid=$(guest_grep $G 'lsm: agent pid ' | head -n 1 | sed 's/.*agent pid \([0-9]*\).*/\1/')
quiet=$(guest_grep $G 'lsm: quiet pid ' | head -n 1 | sed 's/.*quiet pid \([0-9]*\).*/\1/')
[ -n "$agent_pid" ] && [ -n "$quiet" ] || die "the guest hook did not report its pids"
rig_say "published: tracking ${t_tracking} s after xl create, frames $tgfn.. inside $limit, agent pid $agent_pid, quiet pid $quiet"

# --- 2. the published frames, mapped from dom0 ------------------------------
# map_table FILE: map every published frame, save the pages to FILE, keep
# foreignmap's lines in FILE.out.
gfn_args=$(sed 's/^/0x/' $T/frames | tr '\n' ' ')
map_table() {
    # shellcheck disable=SC2086
    foreignmap --fnv --save "$1" "$domid" $gfn_args > "$1.out" 2>&1
}
# u32 FILE OFFSET / u64 FILE OFFSET: little-endian words of a saved table.
u32() { od -A n -t u4 -j "$2" -N 4 "$1" | tr -d ' '; }
x64() { od -A n -t x8 -j "$2" -N 8 "$1" | tr -d ' '; }

seq=100
# request CMD: send "<seq> CMD" through xenstore; the reply's text in $reply
# (empty after 60 s without one).
request() {
    seq=$((seq + 1))
    xenstore-write "$home/request" "$seq $1" || die "xenstore-write of the request failed"
}
await_reply() {
    local i=0 s
    reply=
    while [ "$i" -lt 300 ]; do
        s=$(xs status)
        case $s in "$seq "*) reply=${s#"$seq "}; return 0 ;; esac
        sleep 0.2; i=$((i + 1))
    done
    return 1
}

# Most table pages are still all zero (unused task and group slots); a match
# is strong evidence only for the others, so they are counted apart.
ZERO_PAGE_FNV=b93a0c83ce3b6325
clog=$(rig_console_log $G)
attempt=0 dump_ok=
# Under a loaded host the window's start reaches dom0's console log some
# 3 s late and the mapping takes 0.4-3 s, so one 4 s window in two to five
# is caught in time (measured); twelve give a loaded run its chance.
while [ "$attempt" -lt 12 ] && [ -z "$dump_ok" ]; do
    attempt=$((attempt + 1))
    nb=$(grep -ac DEPMIG-DUMP-BEGIN "$clog")
    ne=$(guest_grep $G 'DEPMIG-DUMP-END' | wc -l)
    read -r t_req _ < /proc/uptime
    request dump-window
    # One cheap grep per poll: the window is 4 s and dom0 forks slowly.
    i=0
    while [ "$(grep -ac DEPMIG-DUMP-BEGIN "$clog")" -le "$nb" ]; do
        [ "$i" -ge 600 ] && die "no DEPMIG-DUMP-BEGIN within 60 s of the dump request"
        sleep 0.1; i=$((i + 1))
    done
    read -r t_seen _ < /proc/uptime
    # Map at once (the guest keeps running: a page that stays put during the
    # window reads the same whenever it is read); the agent answers only
    # after its window, so no reply yet means the mapping was inside it.
    map_table $T/table.bin; fm=$?
    st_after=$(xs status)
    read -r t_mapped _ < /proc/uptime
    await_reply || die "no reply to '$seq dump-window'"
    [ "$reply" = dumped ] || die "dump-window answered '$reply'"
    [ "$fm" -eq 0 ] || { cat $T/table.bin.out; die "foreignmap failed (status $fm): $(grep -v ': ok ' $T/table.bin.out | head -n 2 | tr '\n' ' ')"; }
    case $st_after in "$seq "*) in_window=no ;; *) in_window=yes ;; esac
    # The END line reaches the console log after the reply: wait for all of it.
    i=0
    while :; do
        end=$(guest_grep $G 'DEPMIG-DUMP-END' | tail -n 1)
        [ "$(guest_grep $G 'DEPMIG-DUMP-END' | wc -l)" -gt "$ne" ] \
            && [ "$(echo "$end" | sed 's/.* digests=//' | tr ',' '\n' | grep -c .)" -eq 322 ] && break
        [ "$i" -ge 60 ] && die "no complete DEPMIG-DUMP-END line after the reply"
        sleep 0.5; i=$((i + 1))
    done
    begin=$(guest_grep $G 'DEPMIG-DUMP-BEGIN' | tail -n 1)
    echo "$begin" | sed 's/.* frames=\([^ ]*\).*/\1/' | tr ',' '\n' > $T/dump.frames
    cmp -s $T/dump.frames $T/frames || die "the dump window lists other frames than the agent published"
    echo "$begin" | sed 's/.* digests=\([^ ]*\).*/\1/' | tr ',' '\n' > $T/begin
    echo "$end" | sed 's/.* digests=\([^ ]*\).*/\1/' | tr ',' '\n' > $T/end
    sed -n 's/.* fnv \([0-9a-f]*\) .*/\1/p' $T/table.bin.out > $T/mapped
    [ "$(wc -l < $T/begin)" -eq 322 ] && [ "$(wc -l < $T/end)" -eq 322 ] \
        || die "the guest printed $(wc -l < $T/begin)/$(wc -l < $T/end) digests, want 322"
    [ "$(wc -l < $T/mapped)" -eq 322 ] || die "foreignmap digested $(wc -l < $T/mapped) pages, want 322"
    # per page: begin end mapped
    cmpline=$(awk -v zero=$ZERO_PAGE_FNV 'FILENAME == ARGV[1] { b[FNR] = $1; next }
                   FILENAME == ARGV[2] { e[FNR] = $1; next }
                   { n++; if (b[FNR] != e[FNR]) moved++; else if ($1 == b[FNR]) { same++; if ($1 != zero) nz++ } else bad++ }
                   END { printf "%d %d %d %d %d\n", n, same + 0, moved + 0, bad + 0, nz + 0 }' \
                   $T/begin $T/end $T/mapped)
    set -- $cmpline
    pages=$1 same=$2 moved=$3 mismatched=$4 nonzero=$5
    rig_say "dump attempt $attempt: pages=$pages equal=$same (non-zero $nonzero) changed_in_window=$moved mismatched=$mismatched mapped_in_window=$in_window (begin seen $(awk -v a="$t_req" -v b="$t_seen" 'BEGIN { printf "%.1f", b - a }') s after the request, mapped $(awk -v a="$t_seen" -v b="$t_mapped" 'BEGIN { printf "%.1f", b - a }') s later)"
    # Inside the window a page that stayed put must read the same from dom0;
    # after it (mapped too late) the guest may have moved on: try again.
    [ "$in_window" = no ] || [ "$mismatched" -eq 0 ] \
        || die "$mismatched of the mapped pages differ from the guest's digests although the page did not change in the window"
    if [ "$in_window" = yes ] && [ "$moved" -eq 0 ] && [ "$same" -eq 322 ]; then
        dump_ok=1
    fi
done
[ -n "$dump_ok" ] || die "no quiet dump window in $attempt attempts (last: equal=$same changed=$moved mapped_in_window=$in_window)"

# The pages' content, checked from dom0's side.
text0=$(sed -n 1p $T/table.bin.out | sed -n 's/.* text \(.*\)$/\1/p')
text1=$(sed -n 2p $T/table.bin.out | sed -n 's/.* text \(.*\)$/\1/p')
[ "$text0" = DMTAINT1 ] || die "table page 0 starts '$text0', want DMTAINT1"
[ "$text1" = DMPROF01 ] || die "table page 1 (profile-gfn) starts '$text1', want DMPROF01"
B=$T/table.bin
[ "$(u32 $B 8)" = 1 ] && [ "$(u32 $B 12)" = 4096 ] && [ "$(u32 $B 16)" = 322 ] \
    || die "table header: version $(u32 $B 8) page size $(u32 $B 12) pages $(u32 $B 16)"
[ "$(u32 $B 20)" = 1 ] || die "table header: profile page $(u32 $B 20), want 1"
[ "$(u32 $B 40)" = "$agent_pid" ] || die "table header: agent tgid $(u32 $B 40), the agent is pid $agent_pid"
[ "$(u32 $B 44)" = 1 ] || die "table header: state $(u32 $B 44), want 1 (tracking)"
od -v -A n -t x8 -j 64 -N $((322 * 8)) $B | tr -s ' ' '\n' | grep . | sed 's/^0*//' > $T/hdr.frames
cmp -s $T/hdr.frames $T/frames || die "the mapped header does not list the published frames"
task_page=$(u32 $B 24) group_page=$(u32 $B 32)
# Profile (page 1 of the saved table).
P=4096
prel=$(dd if=$B bs=1 skip=$((P + 0x90)) count=64 2>/dev/null | tr -d '\000')
[ "$prel" = "$krel" ] || die "profile release '$prel', the guest runs '$krel'"
[ "$(u32 $B $((P + 8)))" = 1 ] || die "profile version $(u32 $B $((P + 8)))"
psz=$(u32 $B $((P + 0x6c)))
[ "$psz" = 64 ] || die "profile sizeof(struct page) $psz, want 64"
levels=$(u32 $B $((P + 0x48)))
[ "$levels" = 4 ] || [ "$levels" = 5 ] || die "profile paging levels $levels"
pob=$(x64 $B $((P + 0x28)))
case $pob in ffff8*|ffff9*|ffffa*|ffffb*|ffffc*) ;; *) die "profile page_offset_base $pob is no direct-map address" ;; esac
itask=$(x64 $B $((P + 0x20))) text=$(x64 $B $((P + 0x18))) pbase=$(x64 $B $((P + 0x40)))
comm_off=$(u32 $B $((P + 0x5c)))
# init_task lies in the kernel image: __pa(v) = v - 0xffffffff80000000 + phys_base.
pa=$((0x$itask - 0xffffffff80000000 + 0x$pbase + comm_off))
[ "$pa" -gt 0 ] && [ $((pa >> 12)) -lt "$limit" ] || die "init_task.comm at physical $pa is outside the guest"
foreignmap --fnv --save $T/init.bin "$domid" $((pa >> 12)) $(((pa + 15) >> 12)) > $T/init.out 2>&1 \
    || die "mapping init_task's frame failed: $(head -n 1 $T/init.out)"
icomm=$(dd if=$T/init.bin bs=1 skip=$((pa & 4095)) count=16 2>/dev/null | tr -d '\000')
case $icomm in swapper*) ;; *) die "init_task.comm through the profile reads '$icomm', want swapper" ;; esac
rig_say "profile: release $prel, _text 0x$text, init_task 0x$itask ('$icomm' at gfn $(printf '%#x' $((pa >> 12)))), page_offset_base 0x$pob, phys_base 0x$pbase, levels $levels"

# --- 3. freeze and thaw through xenstore ------------------------------------
# group_of PID: "<root> <flags hex>" of PID's group in a freshly mapped table
# (bounded walk; "none" without a valid entry, "loop" past 32 steps).
group_of() {
    map_table $T/t.bin || { echo maperr; return; }
    local off lo hi g w p k=0
    off=$((task_page * 4096 + 8 * $1))
    lo=$(u32 $T/t.bin $off); hi=$(u32 $T/t.bin $((off + 4)))
    [ "$hi" = $((0x80000000 | $1)) ] || { echo none; return; }
    g=$lo
    while [ "$k" -lt 32 ]; do
        [ "$g" -lt 262144 ] || { echo badid; return; }
        w=$(u32 $T/t.bin $((group_page * 4096 + 4 * g)))
        p=$((w & 0xffffff))
        [ "$p" -eq "$g" ] && { printf '%d %x\n' "$g" $((w >> 24)); return; }
        g=$p; k=$((k + 1))
    done
    echo loop
}
# watch_line REGEX SECONDS: wait until the watcher's newest report on the
# quiet process (it repeats it every 5 s) matches REGEX; print it.
watch_line() {
    local i=0 l
    while [ "$i" -lt "$2" ]; do
        l=$(guest_grep $G "lsm-watch: pid=$quiet " | tail -n 1)
        echo "$l" | grep -Eq "$1" && { echo "$l"; return 0; }
        sleep 1; i=$((i + 1))
    done
    return 1
}
heartbeat() { guest_grep $G 'lsm-watch: ' | sed -n 's/.* n=\([0-9]*\).*/\1/p' | tail -n 1; }

g_before=$(group_of $quiet)
rig_say "quiet pid $quiet before freezing: group $g_before"
case $g_before in [0-9]*" "[0-9a-f]*) ;; *) die "quiet pid $quiet has no group in the mapped table ($g_before)" ;; esac
set -- $g_before
[ $((0x$2 & 0x01)) -eq 0 ] || die "quiet pid $quiet is tainted before any freeze (flags 0x$2)"
[ "$1" -ne 0 ] || die "quiet pid $quiet is in the tainted group 0"

request freeze
await_reply || die "no reply to '$seq freeze'"
case $reply in "frozen "*) ;; *) die "freeze answered '$reply'" ;; esac
set -- $reply
fz_groups=$2 fz_procs=$3
[ "${fz_groups:-0}" -ge 1 ] && [ "${fz_procs:-0}" -ge 1 ] || die "freeze froze nothing ($reply)"
wl=$(watch_line "pid=$quiet cgroup=/depmig/g[0-9]+ frozen=1 " 30) \
    || die "the watcher never saw pid $quiet in a frozen depmig cgroup (agent: $reply)"
fz_cg=$(echo "$wl" | sed 's/.* cgroup=\([^ ]*\).*/\1/')
hb0=$(heartbeat)
g_frozen=$(group_of $quiet)
set -- $g_frozen
[ "/depmig/g$1" = "$fz_cg" ] || die "the frozen cgroup $fz_cg is not the table's group $g_frozen"
[ $((0x$2 & 0x04)) -ne 0 ] || die "mapped table: group of pid $quiet not marked FROZEN ($g_frozen)"
sleep 12
hb1=$(heartbeat)
[ "$hb1" -gt "$hb0" ] || die "the tainted watcher stopped while the quiet group was frozen (heartbeat $hb0 -> $hb1)"
frozen_now=$(guest_grep $G "lsm-watch: pid=$quiet " | tail -n 1)
case $frozen_now in *" frozen=1 "*) ;; *) die "pid $quiet did not stay frozen: $frozen_now" ;; esac
rig_say "frozen: agent '$reply', watcher '$wl', table group $g_frozen, watcher heartbeat $hb0 -> $hb1"

request thaw
await_reply || die "no reply to '$seq thaw'"
case $reply in "thawed "*) ;; *) die "thaw answered '$reply'" ;; esac
set -- $reply
th_groups=$2
[ "${th_groups:-0}" -ge 1 ] || die "thaw thawed no group ($reply), $fz_groups were frozen"
watch_line "pid=$quiet cgroup=/ frozen=- " 30 >/dev/null || die "pid $quiet did not come back to its cgroup after thaw"
g_thawed=$(group_of $quiet)
set -- $g_thawed
[ $(( 0x$2 & 0x05 )) -eq 0 ] || die "mapped table after thaw: group of pid $quiet has flags 0x$2 (FROZEN or TAINTED)"
rig_say "thawed: agent '$reply', table group $g_thawed"

# Frozen again; the watcher (tainted: it writes the console) signals it.
nthaw=$(guest_grep $G 'depmig-lsm: thawed .* an interaction reached' | wc -l)
request freeze
await_reply || die "no reply to '$seq freeze' (second)"
case $reply in "frozen "*) ;; *) die "second freeze answered '$reply'" ;; esac
reply2=$reply
i=0
while ! guest_grep $G "lsm-watch: poked pid=$quiet " >/dev/null; do
    [ "$i" -ge 60 ] && die "the watcher never signalled pid $quiet in its second freeze"
    sleep 1; i=$((i + 1))
done
i=0
while [ "$(guest_grep $G 'depmig-lsm: thawed .* an interaction reached' | wc -l)" -le "$nthaw" ]; do
    [ "$i" -ge 30 ] && die "the agent did not thaw the group a signal reached"
    sleep 1; i=$((i + 1))
done
watch_line "pid=$quiet cgroup=/ frozen=- state=S n=[0-9]+ freezes=2" 30 >/dev/null \
    || die "pid $quiet not back in its cgroup after the interaction"
g_poked=$(group_of $quiet)
set -- $g_poked
[ $(( 0x$2 & 0x01 )) -ne 0 ] || die "mapped table: pid $quiet not TAINTED after a tainted sender's signal ($g_poked)"
[ $(( 0x$2 & 0x04 )) -eq 0 ] || die "mapped table: pid $quiet still FROZEN after the interaction thawed it ($g_poked)"
request thaw
await_reply || die "no reply to the final thaw"
rig_say "interaction: second freeze '$reply2', thawed by the signal, table group $g_poked, final thaw '$reply'"

guest_grep $G 'lsm-watch: agent pid=.* exited' >/dev/null && die "the agent exited"
guest_dump $G
rig_json lsm-xen "{\"tracking_s\":$t_tracking,\"table_gfn\":\"$tgfn\",\"profile_gfn\":\"$pgfn\",\"pages\":322,\"guest_frames\":$limit,\"dump_attempts\":$attempt,\"pages_equal\":$same,\"pages_nonzero\":$nonzero,\"release\":\"$prel\",\"init_task\":\"0x$itask\",\"frozen_groups\":$fz_groups,\"frozen_procs\":$fz_procs,\"thawed_groups\":$th_groups}"
xl destroy $G
rig_wait_gone $G 60 || rig_fail "guest $G did not go away"
rig_result PASS "agent tracking in the Xen guest ${t_tracking} s after xl create (lsm $lsm); xenstore table-gfn $tgfn profile-gfn $pgfn (322 pages < $limit frames); dom0 mapped all 322 published frames in the dump window (window $attempt): $same/322 FNV-1a digests equal the guest's ($nonzero non-zero pages), DMTAINT1 header lists its frames, DMPROF01 profile matches release $prel and init_task '$icomm'; freeze froze $fz_groups group(s)/$fz_procs proc(s) incl. quiet pid $quiet (cgroup.events frozen=1, FROZEN in the table) while the tainted watcher ran, thaw thawed $th_groups; a signal thawed and tainted it"
