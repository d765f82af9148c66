#!/usr/bin/env bash
# The walker over a real guest: boots a Debian kernel in plain QEMU (TCG)
# with the guest-lsm agent and three workers (two quiet ones the agent
# freezes, one holding the console: tainted), dumps guest RAM through the
# QEMU monitor, runs walker-dump over it and checks the result against what
# the guest reported (each worker's VmRSS, its class, free memory). Prints
# VERDICT lines; exits non-zero when a check fails.
#
#   real-guest.sh [CPU [KERNEL]]
#
# Without an argument it runs four times: Debian 12's 6.1 (bookworm) and
# Debian 13's 6.12 (trixie), each with CPU model qemu64 (4-level paging)
# and qemu64,+la57 (the kernel turns on 5-level paging). CPU names one CPU
# model; KERNEL is bookworm (the default) or trixie.
set -euo pipefail
if [ $# -eq 0 ]; then
    rc=0
    for k in bookworm trixie; do
        "$0" qemu64 $k || rc=1
        "$0" qemu64,+la57 $k || rc=1
    done
    exit $rc
fi
cpu=$1
suite=${2:-bookworm}
case $cpu in *la57*) mode=5level ;; *) mode=4level ;; esac
# 6.1's verdicts keep their names; another kernel's carry its version.
case $suite in
    bookworm) tag=$mode ;;
    trixie) tag=6.12-$mode ;;
    *) echo "usage: real-guest.sh [CPU [bookworm|trixie]]" >&2; exit 2 ;;
esac
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../../.." && pwd)
. "$top/scripts/lib.sh"

need_pkgs qemu-system-x86 busybox-static cpio python3
built=$("$top/guest-lsm/build.sh" "$suite")
eval "$built"
work="$DEPMIG_CACHE/walker/real-guest-$suite"
rm -rf "$work" && mkdir -p "$work/root"/{bin,depmig,proc,sys,dev,run}
cp /bin/busybox "$work/root/bin/busybox"
cp "$here/real-guest-init.sh" "$work/root/init"
cp "$agent" "$bpf" "$work/root/depmig/"
(cd "$work/root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.gz"
(cd "$top" && cargo build --release --locked -p depmig-walker --bin walker-dump >&2)
dump_bin="$top/target/release/walker-dump"

ram_mb=256
log "booting $(basename "$kernel"), CPU $cpu (serial log $work/serial.log)"
python3 - "$work/serial.log" "$work/mon" "$work/mem.dump" $((ram_mb << 20)) > "$work/dumper.out" 2>&1 <<'PY' &
import socket, sys, time
log, mon, out, ram = sys.argv[1:5]
end = time.time() + 400
while time.time() < end:
    try:
        if b"WALKER-DUMP-NOW" in open(log, "rb").read():
            break
    except FileNotFoundError:
        pass
    time.sleep(0.2)
else:
    sys.exit("no dump marker in the serial log")
s = socket.socket(socket.AF_UNIX)
s.connect(mon)
s.settimeout(60)
def cmd(c):
    s.sendall((c + "\n").encode())
    buf = b""
    while not buf.rstrip().endswith(b"(qemu)"):
        buf += s.recv(4096)
cmd("")
cmd("stop")
cmd('pmemsave 0 %s "%s"' % (ram, out))
cmd("cont")
print("dumped")
PY
dumper=$!
timeout --kill-after=10 400 qemu-system-x86_64 -M pc -cpu "$cpu" -smp 1 -m "$ram_mb" \
    -accel tcg -display none -no-reboot \
    -kernel "$kernel" -initrd "$work/initramfs.gz" \
    -append "console=ttyS0 loglevel=4 panic=-1 rdinit=/init" \
    -serial "file:$work/serial.log" \
    -monitor "unix:$work/mon,server=on,wait=off" || true
wait "$dumper" || die "no RAM dump: $(cat "$work/dumper.out")"

gfn=$(tr -d '\r' < "$work/serial.log" | sed -n 's/^WALKER publish data\/depmig\/table-gfn=//p')
[ -n "$gfn" ] || die "the agent published no table frame (see $work/serial.log)"
"$dump_bin" "$work/mem.dump" "$gfn" | tee "$work/walker.out" >&2 || die "walker-dump failed"
rm -f "$work/mem.dump"

python3 - "$work/serial.log" "$work/walker.out" "$tag" "$(basename "$kernel")" <<'PY'
import re, sys
tag, vmlinuz = sys.argv[3], sys.argv[4]
mode = tag[-6:]
serial = open(sys.argv[1], "rb").read().decode(errors="replace").replace("\r", "")
out = open(sys.argv[2]).read()
roles = {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"^WALKER role (\w+) pid (\d+) rss_kb (\d+)$", serial, re.M)}
procs = {int(m[0]): (int(m[1]), m[2]) for m in re.findall(r"^\s+tgid\s+(\d+) .* pages\s+(\d+) (\w+)$", out, re.M)}
ok = True
def verdict(name, cond, detail):
    global ok
    ok &= bool(cond)
    print("VERDICT walker-%s-%s %s %s" % (tag, name, "PASS" if cond else "FAIL", detail))
levels = re.search(r"levels (\d)", out)
verdict("paging-levels", levels and levels[1] == mode[0], "profile says %s levels" % (levels[1] if levels else "?"))
release = re.search(r"profile: release (\S+)", out)
verdict("profile-release", release and vmlinuz == "vmlinuz-" + release[1],
        "profile says %s, booted %s" % (release[1] if release else "?", vmlinuz))
# 6.1 marks free heads with the inverted bit, 6.12 with PGTY_buddy in the
# top byte; both have 11 free lists on x86-64.
want_types = "InvertedBit" if tag == mode else "TopByte"
types = re.search(r"profile: page types (\w+) buddy \(page_type & (\w+)\) == (\w+) max order (\d+)", out)
verdict("page-types", types and types[1] == want_types and types[4] == "10",
        types[0] if types else "no page-type line")
want = {"q1": "Frozen", "q2": "Frozen", "t1": "Tainted", "agent": "Tainted"}
for role, cls in want.items():
    pid, rss = roles.get(role, (0, 0))
    pages, got = procs.get(pid, (-1, "missing"))
    verdict("class-" + role, got == cls, "pid %d: %s (expected %s)" % (pid, got, cls))
    if role != "agent":
        # VmRSS counts resident pages; the walker also counts PFN-mapped
        # pages such as vvar, which RSS leaves out.
        verdict("pages-" + role, 0 <= pages - rss // 4 <= 8,
                "pid %d: walker %d pages, VmRSS %d kB = %d pages" % (pid, pages, rss, rss // 4))
failed = re.search(r"address spaces (\d+) \(failed (\d+)\)", out)
verdict("all-walks-complete", failed and int(failed[2]) == 0 and int(failed[1]) >= 5,
        failed[0] if failed else "no summary")
frozen = re.search(r"frozen (\d+)\)", out)
# The two frozen workers hold 3 MB and 2 MB strings of their own.
verdict("frozen-frames", frozen and int(frozen[1]) >= 5000000 // 4096,
        "frozen-only frames %s" % (frozen[1] if frozen else "?"))
scan = re.search(r"struct page scan: (\d+) free frames", out)
buddy = re.search(r"^WALKER buddy_frames (\d+)$", serial, re.M)
# /proc/buddyinfo was read just before the dump; the reading itself
# allocates and frees a little.
verdict("free-matches-buddyinfo",
        scan and buddy and abs(int(scan[1]) - int(buddy[1])) <= int(buddy[1]) // 50,
        "walker %s, /proc/buddyinfo %s" % (scan[1] if scan else "?", buddy[1] if buddy else "?"))
t = re.search(r"targeted free check: (\d+) of (\d+) sets .*?; (\d+) of (\d+) free frames asked found", out)
verdict("targeted-free-agrees",
        t and t[1] == t[2] and t[3] == t[4] and int(t[4]) > 0,
        t[0] if t else "no targeted check")
n = re.search(r"census of every frame: (\d+) asked; user (\d+) \(walk: (\d+) mapped\), user page tables (\d+), kernel flagged (\d+), kernel typed (\d+), plain (\d+), buddy heads (\d+), unreadable (\d+); (\d+) owners", out)
verdict("census-adds-up",
        n and sum(int(x) for x in n.groups()[3:9]) + int(n[2]) == int(n[1]) and n[2] == n[3] and int(n[10]) >= 5,
        n[0] if n else "no census")
free = re.search(r"oracle free frames: (\d+)", out)
verdict("free-frames", free and int(free[1]) >= 65536 // 10 and "fell back" not in out,
        "%s of 65536 frames free" % (free[1] if free else "?"))
sys.exit(0 if ok else 1)
PY
