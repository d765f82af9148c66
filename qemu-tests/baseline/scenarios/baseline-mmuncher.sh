#!/bin/sh
# baseline-mmuncher: stock `xl migrate` of the 512 MiB guest running mmuncher
# (100 MiB rewritten as fast as it goes) to localhost through the rate-limited
# pipe. Passes when the migration completes, the per-round figures are
# written, stock pre-copy ran to its round limit (4.17: 5 live rounds and the
# stop-and-copy round) without converging, the source is gone, and mmuncher on
# the destination verifies every page through two more passes.
. /rig/lib.sh
. /scenario/rig-guest.sh
. /scenario/baseline.sh
G=guest
R=/tmp/baseline-mmuncher.json
guest_start $G ticker,mmuncher || { cat /tmp/$G.create.log; rig_fail "xl create failed: $(tail -n 1 /tmp/$G.create.log)"; }
guest_wait_passes $G 2 400 || { guest_dump $G; rig_fail "mmuncher did not verify 2 passes before the migration"; }
src=$(rig_domid $G)
rig_say "migrating $G (domid $src, mmuncher at pass $(guest_passes $G)) at $DEPMIG_LINK_RATE = $DEPMIG_LINK_BYTES_PER_SEC B/s"
baseline_migrate $G baseline-mmuncher mmuncher $R
rc=$?
cat /tmp/$G.migrate.log /tmp/$G.watch.log
[ "$rc" = 0 ] || { guest_dump $G; rig_fail "xl migrate failed (status $rc): $(tail -n 1 /tmp/$G.migrate.log)"; }
[ -f $R ] || rig_fail "migpipe wrote no report"
cat $R
rig_export $R baseline-mmuncher.json
rig_json report "$(cat $R)"
rig_say "xl migrate took $MIGRATE_SECONDS s; $(baseline_summary $R)"
baseline_check_strict $R

# The source is gone and the destination runs under the guest's name.
dst=$(rig_domid $G)
[ -n "$dst" ] && [ "$dst" != "$src" ] || rig_fail "no destination domain named $G (source was $src, now '$dst')"
rig_wait_gone "$G--migratedaway" 60 || rig_fail "the source domain still exists"
xl list | awk -v s="$src" 'NR > 1 && $2 == s { found = 1 } END { exit !found }' && rig_fail "domid $src still listed"

# mmuncher on the destination checks every page against the pass before.
after=$(guest_passes $G)
guest_wait_passes $G $((after + 2)) 400 || { guest_dump $G; rig_fail "mmuncher did not verify two passes after the migration (at $(guest_passes $G), wanted $((after + 2)))"; }
guest_corrupt $G && rig_fail "mmuncher: $(guest_grep $G 'CORRUPT' | head -n 1)"
gap=$(guest_grep $G 'ticker: .*gap_ms=' | sed 's/.*gap_ms=\([0-9]*\).*/\1/' | sort -n | tail -n 1)
rig_say "ticker's longest gap: ${gap:-none} ms"
guest_dump $G

# The paper's regime: stock pre-copy must not converge at this link rate.
grep -q '"parse_error": null' $R || rig_fail "the stream was not understood: $(grep parse_error $R)"
rounds=$(jnum $R rounds)
final=$(jnum $R final_round)
[ "$final" = "$rounds" ] || rig_fail "no stop-and-copy round identified (rounds=$rounds final=$final)"
[ "$rounds" -eq 6 ] || rig_fail "stock pre-copy stopped after $rounds rounds, not at 4.17's limit (5 live + 1): it converged at $DEPMIG_LINK_RATE"
last_live=$(jlist $R per_round_pages | cut -d, -f5)
[ "$last_live" -ge 25600 ] || rig_fail "round 5 sent $last_live pages, fewer than mmuncher's 25600: the dirtier did not outrun the link"
rig_result PASS "$(baseline_summary $R) migrate=${MIGRATE_SECONDS}s, mmuncher verified to pass $(guest_passes $G)"
