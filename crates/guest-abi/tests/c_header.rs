//! Holds the taint table's layout against its C definition,
//! guest-lsm/bpf/table.h, which the BPF program includes.
//!
//! Generates a C file of `_Static_assert`s from this crate's values and
//! compiles it with table.h: with the host's `cc` always (`test.sh`
//! installs build-essential), and with `clang -target bpf`, the compiler
//! and target the BPF program is built with, when clang is installed
//! (guest-lsm/build.sh installs it; the test says SKIPPED otherwise). A
//! mismatch fails compilation and so the test.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::Command;

use depmig_guest_abi::table::{self, hdr};

/// The directory holding table.h.
const BPF_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-lsm/bpf");

struct Checks(String);

impl Checks {
    fn assert(&mut self, c_expr: &str, value: impl std::fmt::Display) {
        writeln!(
            self.0,
            "_Static_assert(({c_expr}) == ({value}), \"{c_expr} == {value}\");"
        )
        .unwrap();
    }
    /// A header member: its offset in `struct dm_table` and its width.
    fn member(&mut self, c_member: &str, off: usize, width: usize) {
        self.assert(
            &format!("__builtin_offsetof(struct dm_table, {c_member})"),
            off,
        );
        self.assert(
            &format!("sizeof(((struct dm_table *)0)->{c_member})"),
            width,
        );
    }
}

/// The C source asserting every constant and offset of the table.
fn checks() -> String {
    // The kernel's fixed-width types, without any system header: the same
    // source then compiles for the host and for the BPF target.
    let mut c = Checks(String::from(
        "typedef unsigned long long __u64;\ntypedef unsigned int __u32;\n#include \"table.h\"\n",
    ));

    for (name, v) in [
        ("DM_PAGE_SIZE", table::PAGE_SIZE as u64),
        ("DM_TASK_SLOTS", u64::from(table::TASK_SLOTS)),
        ("DM_GROUP_SLOTS", u64::from(table::GROUP_SLOTS)),
        ("DM_HEADER_WORDS * 8", table::PAGE_SIZE as u64),
        ("DM_PROFILE_WORDS * 8", table::PAGE_SIZE as u64),
        ("DM_PARENT_MASK", u64::from(table::PARENT_MASK)),
        ("DM_FLAGS_MASK", u64::from(!table::PARENT_MASK)),
        ("1u << DM_FLAG_SHIFT", u64::from(table::PARENT_MASK + 1)),
        ("DM_F_TAINTED", u64::from(table::F_TAINTED)),
        ("DM_F_SHARED_MEM", u64::from(table::F_SHARED_MEM)),
        ("DM_F_FROZEN", u64::from(table::F_FROZEN)),
        ("DM_F_THAW_REQ", u64::from(table::F_THAW_REQ)),
        ("DM_F_REF", u64::from(table::F_REF)),
        ("DM_F_FREED", u64::from(table::F_FREED)),
        ("DM_TASK_VALID", u64::from(table::TASK_VALID)),
        (
            "DM_G_GROUPS_EXHAUSTED",
            u64::from(table::G_GROUPS_EXHAUSTED),
        ),
        ("DM_G_OBJECTS_FULL", u64::from(table::G_OBJECTS_FULL)),
        ("DM_G_PID_OVERFLOW", u64::from(table::G_PID_OVERFLOW)),
        ("DM_G_FIND_BOUND", u64::from(table::G_FIND_BOUND)),
        ("DM_MAX_FIND", u64::from(table::MAX_FIND)),
        ("DM_PROBE_SLOTS", hdr::PROBE_SLOTS as u64),
    ] {
        c.assert(name, v);
    }
    for (name, off) in [
        ("DM_H_MAGIC", hdr::MAGIC),
        ("DM_H_VERSION", hdr::VERSION),
        ("DM_H_PAGE_SIZE", hdr::PAGE_SIZE),
        ("DM_H_NR_PAGES", hdr::NR_PAGES),
        ("DM_H_PROFILE_PAGE", hdr::PROFILE_PAGE),
        ("DM_H_TASK_PAGE", hdr::TASK_PAGE),
        ("DM_H_TASK_SLOTS", hdr::TASK_SLOTS),
        ("DM_H_GROUP_PAGE", hdr::GROUP_PAGE),
        ("DM_H_GROUP_SLOTS", hdr::GROUP_SLOTS),
        ("DM_H_AGENT_TGID", hdr::AGENT_TGID),
        ("DM_H_STATE", hdr::STATE),
        ("DM_H_NEXT_GROUP", hdr::NEXT_GROUP),
        ("DM_H_FLAGS", hdr::FLAGS),
        ("DM_H_MAX_FIND", hdr::MAX_FIND),
        ("DM_H_FRAMES", hdr::FRAMES),
        ("DM_H_PROBE_ADDR", hdr::PROBE_ADDR),
        ("DM_H_PROBE_VAL", hdr::PROBE_VAL),
        ("DM_H_PROBE_SEQ", hdr::PROBE_SEQ),
        ("DM_H_PROBE_DONE", hdr::PROBE_DONE),
    ] {
        c.assert(name, off);
    }

    // The header struct: the magic, every u32 word the agent writes
    // (`Header::words`, by the C member at its offset), the frame list and
    // the probe slots.
    c.member("h.magic", hdr::MAGIC, table::MAGIC.len());
    let members = [
        (hdr::VERSION, "h.version"),
        (hdr::PAGE_SIZE, "h.page_size"),
        (hdr::NR_PAGES, "h.nr_pages"),
        (hdr::PROFILE_PAGE, "h.profile_page"),
        (hdr::TASK_PAGE, "h.task_page"),
        (hdr::TASK_SLOTS, "h.task_slots"),
        (hdr::GROUP_PAGE, "h.group_page"),
        (hdr::GROUP_SLOTS, "h.group_slots"),
        (hdr::AGENT_TGID, "h.agent_tgid"),
        (hdr::STATE, "h.state"),
        (hdr::NEXT_GROUP, "h.next_group"),
        (hdr::FLAGS, "h.flags"),
        (hdr::MAX_FIND, "h.max_find"),
    ];
    let words = table::Header::new(0, 0).words();
    assert_eq!(
        words.len(),
        members.len(),
        "a header word without a C member"
    );
    for (off, _) in words {
        let (_, member) = members
            .iter()
            .find(|(o, _)| *o == off)
            .unwrap_or_else(|| panic!("no C member named for the header word at {off:#x}"));
        c.member(member, off, 4);
    }
    c.member("h.frames", hdr::FRAMES, 8 * hdr::MAX_FRAMES);
    c.member("h.probe_addr", hdr::PROBE_ADDR, 8 * hdr::PROBE_SLOTS);
    c.member("h.probe_val", hdr::PROBE_VAL, 8 * hdr::PROBE_SLOTS);
    c.member("h.probe_seq", hdr::PROBE_SEQ, 4);
    c.member("h.probe_done", hdr::PROBE_DONE, 4);
    c.member("words", 0, table::PAGE_SIZE);

    // The pages after the header.
    let page = table::PAGE_SIZE;
    c.member("profile", table::PROFILE_PAGE as usize * page, page);
    c.member(
        "tasks",
        table::TASK_PAGE as usize * page,
        table::TASK_SLOTS as usize * table::TASK_ENTRY_BYTES as usize,
    );
    c.assert(
        "sizeof(((struct dm_table *)0)->tasks[0])",
        table::TASK_ENTRY_BYTES,
    );
    c.member(
        "groups",
        table::GROUP_PAGE as usize * page,
        table::GROUP_SLOTS as usize * table::GROUP_WORD_BYTES as usize,
    );
    c.assert(
        "sizeof(((struct dm_table *)0)->groups[0])",
        table::GROUP_WORD_BYTES,
    );
    c.assert("sizeof(struct dm_table)", table::TABLE_BYTES);
    c.assert("sizeof(struct dm_table) / DM_PAGE_SIZE", table::NR_PAGES);
    c.0
}

/// Compiles `checks()` with `compiler` and `args`, failing with the
/// compiler's messages.
fn compile(compiler: &str, args: &[&str], tag: &str) {
    let dir = std::env::temp_dir().join(format!("guest-abi-check-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("check.c");
    std::fs::write(&file, checks()).unwrap();
    let out = Command::new(compiler)
        .args(args)
        .args(["-fsyntax-only", "-Werror", "-I", BPF_DIR])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {compiler}: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "table.h cross-check ({tag}) failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn layout_matches_table_h_on_the_host() {
    assert!(
        Path::new(BPF_DIR).join("table.h").is_file(),
        "{BPF_DIR}/table.h is missing"
    );
    compile("cc", &["-std=gnu11"], "host");
}

#[test]
fn layout_matches_table_h_for_the_bpf_target() {
    let have_clang = Command::new("clang")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_clang {
        // Straight to the stream: the test harness captures `eprintln!` of
        // passing tests, and a skip nobody sees would read as a pass.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: table.h check for the BPF target (no clang; install clang, as \
             guest-lsm/build.sh does, to run it)"
        );
        return;
    }
    compile("clang", &["-std=gnu11", "-target", "bpf"], "bpf");
}

/// The agent's first layout check (kept as it was): the C header names
/// the same slot counts and header offsets as the Rust constants.
#[test]
fn layout_matches_the_c_header() {
    use depmig_guest_abi::table::*;
    let h = include_str!("../../../guest-lsm/bpf/table.h");
    assert!(h.contains(&format!("#define DM_TASK_SLOTS {TASK_SLOTS}")));
    assert!(h.contains(&format!("#define DM_GROUP_SLOTS {GROUP_SLOTS}")));
    assert!(h.contains("#define DM_H_FRAMES 0x040"));
    assert!(h.contains("#define DM_H_PROBE_SEQ 0xf80"));
    assert_eq!(NR_PAGES, 2 + 64 + 256);
    assert!(NR_PAGES as usize <= hdr::MAX_FRAMES);
}
