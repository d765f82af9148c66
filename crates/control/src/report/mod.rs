//! The per-migration report, schema [`SCHEMA`] (its fields are documented
//! in `qemu-tests/baseline/README.md`), defined once for both of its ends:
//! the source appliance fills a [`MigrationReport`] from its figures and
//! publishes it as compact JSON ([`crate::keys::REPORT`]); dom0's `depmig`
//! reads it back with the same type, adds its own figures under `cli`
//! ([`CommandFigures`]), writes it out and compares reports.
//!
//! It lives in this crate because it is one more value of the contract
//! between dom0 and the appliances: both ends build this crate already,
//! while `depmig-migrate`, which fills the report from the source's
//! figures, pulls in the whole migration engine, which dom0 does not need.
//!
//! The stock `xl migrate` baseline writes the same schema (`migrator`
//! `xl-migrate`, no `depmig` object), so every field the schema lets be
//! `null` is an `Option` here even where the appliance always fills it, and
//! a figure either writer may give as a non-integer is a [`Number`]. The
//! version is the schema name's suffix; readers refuse any other name.
//! Fields are written in their order here, which is part of the format:
//! the rig's scripts take some fields from the compact text with `grep`,
//! first match first.
//!
//! Reading is strict and bounded: entries the schema does not know are
//! skipped; each field's type is checked as it is read, refused with a
//! [`FieldError`] (the reader puts the field's path before it); no array of
//! per-round figures grows past [`MAX_ROUNDS`] entries. What needs the
//! whole report (lengths agreeing with `rounds`, sums, the rules of a
//! report with no round) is checked by the reader after.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use serde::{Deserialize, Serialize};
pub use serde_json::Number;

mod de;

/// Schema name written into every report, version included.
pub const SCHEMA: &str = "depmig-migration-report/1";

/// More rounds than any policy runs (Xen 3.3's limit is 30): the most
/// `rounds` a report may claim, and the most entries a reader takes into
/// any per-round array.
pub const MAX_ROUNDS: u64 = 10_000;

/// The page size of every report: x86's.
pub const PAGE_SIZE: u64 = 4096;

/// One migration's report.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MigrationReport {
    /// [`SCHEMA`].
    #[serde(deserialize_with = "de::string")]
    pub schema: String,
    /// Who migrated: `depmig`, or `xl-migrate` for the stock baseline.
    #[serde(deserialize_with = "de::string")]
    pub migrator: String,
    /// The scenario's name.
    #[serde(default, deserialize_with = "de::text")]
    pub scenario: Option<String>,
    /// The guest's workload.
    #[serde(default, deserialize_with = "de::text")]
    pub workload: Option<String>,
    /// Rate the link was held to, bytes/s (0: unlimited).
    #[serde(default, deserialize_with = "de::figure")]
    pub link_rate_bytes_per_s: Option<Number>,
    /// [`PAGE_SIZE`].
    #[serde(deserialize_with = "de::count")]
    pub page_size: u64,
    /// Pre-copy rounds, the stop-and-copy round included.
    #[serde(deserialize_with = "de::count")]
    pub rounds: u64,
    /// The stop-and-copy round (1-based), when identified.
    #[serde(default, deserialize_with = "de::opt_count")]
    pub final_round: Option<u64>,
    /// Pages with contents sent in each round.
    #[serde(deserialize_with = "de::counts")]
    pub per_round_pages: Vec<u64>,
    /// Each round's figures.
    #[serde(deserialize_with = "de::rounds")]
    pub per_round: Vec<RoundFigures>,
    /// The sum of `per_round_pages`.
    #[serde(deserialize_with = "de::count")]
    pub total_pages: u64,
    /// Frame entries sent over all rounds, holes included.
    #[serde(default, deserialize_with = "de::figure")]
    pub total_pfns: Option<Number>,
    /// `total_pages` × [`PAGE_SIZE`].
    #[serde(default, deserialize_with = "de::figure")]
    pub page_bytes: Option<Number>,
    /// Every byte that crossed the link.
    #[serde(default, deserialize_with = "de::figure")]
    pub stream_bytes: Option<Number>,
    /// The whole migration, ms.
    #[serde(default, deserialize_with = "de::figure")]
    pub total_time_ms: Option<Number>,
    /// The guest's downtime as `downtime_method` measured it, ms.
    #[serde(default, deserialize_with = "de::figure")]
    pub downtime_ms: Option<Number>,
    /// How `downtime_ms` was measured.
    #[serde(default, deserialize_with = "de::text")]
    pub downtime_method: Option<String>,
    /// Source seen suspended until the destination seen running, by `xl
    /// list` polling, ms.
    #[serde(default, deserialize_with = "de::figure")]
    pub downtime_xl_list_ms: Option<Number>,
    /// Stop-and-copy round's start until the destination ran, ms.
    #[serde(default, deserialize_with = "de::figure")]
    pub downtime_final_round_ms: Option<Number>,
    /// Period of the `xl list` poller, ms.
    #[serde(default, deserialize_with = "de::figure")]
    pub poll_interval_ms: Option<Number>,
    /// When things happened, Unix ms.
    #[serde(default, deserialize_with = "de::object")]
    pub events: Option<Events>,
    /// What the stream held.
    #[serde(default, deserialize_with = "de::object")]
    pub stream: Option<StreamFigures>,
    /// depmig's source appliance's own figures (absent from the stock
    /// baseline's reports).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::object"
    )]
    pub depmig: Option<SourceFigures>,
    /// What dom0's command saw (absent from the appliance's own report).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::object"
    )]
    pub cli: Option<CommandFigures>,
}

/// One round's figures (`per_round[i]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundFigures {
    /// The round, 1-based.
    #[serde(deserialize_with = "de::count")]
    pub round: u64,
    /// Pages with contents sent.
    #[serde(deserialize_with = "de::count")]
    pub pages: u64,
    /// Frame entries sent, holes included (round 1 covers the whole p2m).
    #[serde(default, deserialize_with = "de::opt_count")]
    pub pfns: Option<u64>,
    /// Stream bytes of its records.
    #[serde(default, deserialize_with = "de::opt_count")]
    pub bytes: Option<u64>,
    /// Its `PAGE_DATA` records.
    #[serde(default, deserialize_with = "de::opt_count")]
    pub records: Option<u64>,
    /// Its start, ms after the first stream byte.
    #[serde(default, deserialize_with = "de::opt_count")]
    pub start_ms: Option<u64>,
    /// How long it took, ms.
    #[serde(default, deserialize_with = "de::opt_count")]
    pub duration_ms: Option<u64>,
}

/// When things happened (`events`), Unix ms; `None` when not seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Events {
    /// The first stream byte.
    #[serde(deserialize_with = "de::opt_count")]
    pub first_byte_unix_ms: Option<u64>,
    /// The guest seen suspended.
    #[serde(deserialize_with = "de::opt_count")]
    pub suspended_unix_ms: Option<u64>,
    /// The stop-and-copy round's start.
    #[serde(deserialize_with = "de::opt_count")]
    pub final_round_start_unix_ms: Option<u64>,
    /// libxl's (or libxc's) END.
    #[serde(deserialize_with = "de::opt_count")]
    pub stream_end_unix_ms: Option<u64>,
    /// The go-ahead to the destination (xl's go message, depmig's ACK).
    #[serde(deserialize_with = "de::opt_count")]
    pub go_unix_ms: Option<u64>,
    /// The destination seen running.
    #[serde(deserialize_with = "de::opt_count")]
    pub resumed_unix_ms: Option<u64>,
    /// The last stream byte.
    #[serde(deserialize_with = "de::opt_count")]
    pub last_byte_unix_ms: Option<u64>,
}

/// What the stream held (`stream`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamFigures {
    /// The stream's END was seen.
    #[serde(deserialize_with = "de::flag")]
    pub complete: Option<bool>,
    /// libxl records (the stock baseline's stream only).
    #[serde(deserialize_with = "de::opt_count")]
    pub libxl_records: Option<u64>,
    /// libxc records.
    #[serde(deserialize_with = "de::opt_count")]
    pub libxc_records: Option<u64>,
    /// libxc stream version.
    #[serde(deserialize_with = "de::opt_count")]
    pub libxc_version: Option<u64>,
    /// libxc domain type (2: HVM/PVH).
    #[serde(deserialize_with = "de::opt_count")]
    pub domain_type: Option<u64>,
    /// Frames going down inside a record (never expected).
    #[serde(deserialize_with = "de::opt_count")]
    pub pfn_order_anomalies: Option<u64>,
    /// Bytes after the stream proper.
    #[serde(deserialize_with = "de::opt_count")]
    pub trailer_bytes: Option<u64>,
    /// Why the observer stopped making sense of the stream.
    #[serde(deserialize_with = "de::text")]
    pub parse_error: Option<String>,
}

/// depmig's source appliance's own figures (`depmig`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceFigures {
    /// The mode that ran (empty when none did).
    #[serde(deserialize_with = "de::text")]
    pub mode: Option<String>,
    /// The stop policy.
    #[serde(deserialize_with = "de::text")]
    pub policy: Option<String>,
    /// `committed`, or `failed`.
    #[serde(deserialize_with = "de::text")]
    pub result: Option<String>,
    /// Frames in the guest's address space.
    #[serde(deserialize_with = "de::opt_count")]
    pub nr_pfns: Option<u64>,
    /// Process groups the guest's agent froze for the migration.
    #[serde(deserialize_with = "de::opt_count")]
    pub frozen_groups: Option<u64>,
    /// The suspension asked for until the guest seen suspended, ms.
    #[serde(deserialize_with = "de::opt_count")]
    pub suspend_wait_ms: Option<u64>,
    /// Dirty pages per round.
    #[serde(deserialize_with = "de::opt_counts")]
    pub per_round_dirty: Option<Vec<u64>>,
    /// Dirty pages of tainted processes or the kernel per round.
    #[serde(deserialize_with = "de::opt_counts")]
    pub per_round_dirty_tainted: Option<Vec<u64>>,
    /// Pages not sent per round because free in the guest.
    #[serde(deserialize_with = "de::opt_counts")]
    pub per_round_skipped_free: Option<Vec<u64>>,
    /// Entries sent as holes per round (frames gone since round 1).
    #[serde(deserialize_with = "de::opt_counts")]
    pub per_round_holes: Option<Vec<u64>>,
    /// Paper-analysis mode: whose the dirty tainted pages were.
    #[serde(deserialize_with = "de::object")]
    pub census: Option<Census>,
    /// Page verification (`--verify`); absent when it was off, so reports
    /// of migrations without it read and write as before.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::object"
    )]
    pub verify: Option<VerifyFigures>,
    /// `true`: the stream crossed the link in sealed records (`--encrypt
    /// on`: ChaCha20-Poly1305 per record); absent (or `false`): in clear,
    /// with the transcript tag, so that reports of clear migrations read
    /// and write as before.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "de::flag")]
    pub encrypted: Option<bool>,
    /// Sealed records sent (0 in clear).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_count"
    )]
    pub sealed_records: Option<u64>,
    /// How each round's pages travelled (raw, LZ4, zero, delta) and what
    /// that saved; absent in reports written before it existed.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::object"
    )]
    pub pages: Option<PageFigures>,
}

/// How pages travelled (`depmig.pages`), per round as parallel arrays:
/// entry `i` of each is round `i + 1`'s. A page sent raw is one sent whole
/// and uncompressed, in Xen's PAGE_DATA or in a packed record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PageFigures {
    /// The page codec agreed on (`none`, `lz4`).
    #[serde(deserialize_with = "de::text")]
    pub codec: Option<String>,
    /// Pages sent raw.
    #[serde(deserialize_with = "de::opt_counts")]
    pub per_round_raw: Option<Vec<u64>>,
    /// Pages sent as LZ4 blocks.
    #[serde(deserialize_with = "de::opt_counts")]
    pub per_round_lz4: Option<Vec<u64>>,
    /// Pages sent as zero pages (no data).
    #[serde(deserialize_with = "de::opt_counts")]
    pub per_round_zero: Option<Vec<u64>>,
    /// Pages sent as deltas against the destination's copy.
    #[serde(deserialize_with = "de::opt_counts")]
    pub per_round_delta: Option<Vec<u64>>,
    /// Bytes the round's page records would have taken as PAGE_DATA.
    #[serde(deserialize_with = "de::opt_counts")]
    pub per_round_raw_bytes: Option<Vec<u64>>,
    /// Those bytes less the page record bytes sent.
    #[serde(deserialize_with = "de::opt_counts")]
    pub per_round_bytes_saved: Option<Vec<u64>>,
    /// The source's cache of re-sent pages, when deltas were agreed on.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::object"
    )]
    pub delta_cache: Option<DeltaCacheFigures>,
    // The adaptive encodings' figures (`depmig migrate --encodings`):
    // written only when encodings were agreed on; older reports lack them.
    /// `adaptive` (the source could switch the agreed encodings off) or
    /// `fixed` (pinned on).
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "de::text")]
    pub encodings: Option<String>,
    /// Per round: `on` or `off` throughout, or `switched` (at least once,
    /// probes included).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_texts"
    )]
    pub per_round_encodings: Option<Vec<String>>,
    /// Per round, the reason of its last decision: `start`, `pinned`,
    /// `cpu` (raw predicted faster), `link` (encoded predicted faster),
    /// `probe`, `kept`, or `none` (no decision window ended in it).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_texts"
    )]
    pub per_round_encodings_why: Option<Vec<String>>,
    /// Times the encodings switched in the round.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_counts"
    )]
    pub per_round_encodings_switches: Option<Vec<u64>>,
    /// Pages with data sent raw because the encodings were off.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_counts"
    )]
    pub per_round_unencoded: Option<Vec<u64>>,
    /// Time spent encoding, µs.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_counts"
    )]
    pub per_round_encode_us: Option<Vec<u64>>,
    /// Time spent waiting for the link to take bytes, µs.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_counts"
    )]
    pub per_round_link_wait_us: Option<Vec<u64>>,
    /// The last decision's window time predicted with the encodings on,
    /// µs (0 where the reason is `none` or the estimates were not ready).
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_counts"
    )]
    pub per_round_predicted_encoded_us: Option<Vec<u64>>,
    /// The same window's time predicted raw, µs.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_counts"
    )]
    pub per_round_predicted_raw_us: Option<Vec<u64>>,
}

/// The source's cache of re-sent pages (`depmig.pages.delta_cache`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeltaCacheFigures {
    /// Its size, MiB.
    #[serde(deserialize_with = "de::opt_count")]
    pub mib: Option<u64>,
    /// Pages it holds at most.
    #[serde(deserialize_with = "de::opt_count")]
    pub slots: Option<u64>,
    /// Sends of a page whose copy it held (a delta was tried).
    #[serde(deserialize_with = "de::opt_count")]
    pub hits: Option<u64>,
    /// Sends of a page it held no copy of.
    #[serde(deserialize_with = "de::opt_count")]
    pub misses: Option<u64>,
    /// Pages put in.
    #[serde(deserialize_with = "de::opt_count")]
    pub inserts: Option<u64>,
    /// Insertions that replaced another frame's copy.
    #[serde(deserialize_with = "de::opt_count")]
    pub evictions: Option<u64>,
}

/// Most frames a report lists by number as different
/// ([`VerifyFigures::mismatched_frames_listed`]); the count says how many
/// there were.
pub const MAX_LISTED_FRAMES: usize = 64;

/// Page verification's figures (`depmig.verify`): the source's digests of
/// the suspended guest against the destination's of the shell, compared
/// by ranges of frames, then frame by frame where a range differed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VerifyFigures {
    /// `match`, `mismatch`, or `incomplete` (the comparison did not end).
    #[serde(deserialize_with = "de::text")]
    pub result: Option<String>,
    /// Frames per range digest.
    #[serde(deserialize_with = "de::opt_count")]
    pub range_frames: Option<u64>,
    /// Ranges compared.
    #[serde(deserialize_with = "de::opt_count")]
    pub ranges: Option<u64>,
    /// Ranges whose digests differed.
    #[serde(deserialize_with = "de::opt_count")]
    pub mismatched_ranges: Option<u64>,
    /// Frames compared by content (the source's pages with data).
    #[serde(deserialize_with = "de::opt_count")]
    pub frames_compared: Option<u64>,
    /// Frames sent as free: checked still free at the source and zero at
    /// the destination.
    #[serde(deserialize_with = "de::opt_count")]
    pub frames_free: Option<u64>,
    /// Frames absent from the guest (holes): compared by kind only.
    #[serde(deserialize_with = "de::opt_count")]
    pub frames_holes: Option<u64>,
    /// Frames compared by rule, not content: the shell's own xenstore and
    /// console rings ([`VerifyFigures::ring_rule`]).
    #[serde(deserialize_with = "de::opt_count")]
    pub frames_rings: Option<u64>,
    /// The rule the ring frames were compared by.
    #[serde(deserialize_with = "de::text")]
    pub ring_rule: Option<String>,
    /// Frames found different in the ranges narrowed frame by frame.
    #[serde(deserialize_with = "de::opt_count")]
    pub mismatched_frames: Option<u64>,
    /// The first of them, at most [`MAX_LISTED_FRAMES`], ascending.
    #[serde(deserialize_with = "de::opt_counts")]
    pub mismatched_frames_listed: Option<Vec<u64>>,
    /// Each listed frame's class at the source and at the destination,
    /// "SOURCE/DESTINATION" (`data`, `free`, `hole` or `ring`), in the
    /// order of `mismatched_frames_listed`.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_texts"
    )]
    pub mismatched_frames_classes: Option<Vec<String>>,
    /// The source's digesting of the suspended guest, ms.
    #[serde(deserialize_with = "de::opt_count")]
    pub source_ms: Option<u64>,
    /// The destination's digesting of the shell, ms (its own clock).
    #[serde(deserialize_with = "de::opt_count")]
    pub destination_ms: Option<u64>,
    /// `source_ms` per GiB of pages the source read.
    #[serde(deserialize_with = "de::opt_count")]
    pub source_ms_per_gib: Option<u64>,
    /// `destination_ms` per GiB of pages the destination read.
    #[serde(deserialize_with = "de::opt_count")]
    pub destination_ms_per_gib: Option<u64>,
    /// Frames the source found changed since their last send without a
    /// dirty bit (Xen's writes through its own mappings of the vCPU areas
    /// a guest registers), sent again in the copy round before END.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_count"
    )]
    pub unlogged_frames: Option<u64>,
    /// The first of them, at most [`MAX_LISTED_FRAMES`], ascending.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_counts"
    )]
    pub unlogged_frames_listed: Option<Vec<u64>>,
    /// The source's reading of every frame sent with data for that
    /// check, while the guest is suspended, ms.
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "de::opt_count"
    )]
    pub recheck_ms: Option<u64>,
}

/// Paper-analysis mode: whose each round's dirty tainted pages were
/// (`depmig.census`), for the rounds whose census was taken, as parallel
/// arrays (compact in the xenstore node): entry `i` of each is round
/// `round[i]`'s.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Census {
    /// The rounds, ascending.
    #[serde(deserialize_with = "de::opt_counts")]
    pub round: Option<Vec<u64>>,
    /// Each round's dirty tainted pages.
    #[serde(deserialize_with = "de::opt_counts")]
    pub asked: Option<Vec<u64>>,
    /// Of those, pages mapped by (tainted) processes.
    #[serde(deserialize_with = "de::opt_counts")]
    pub user: Option<Vec<u64>>,
    /// Page tables of user address spaces.
    #[serde(deserialize_with = "de::opt_counts")]
    pub page_tables: Option<Vec<u64>>,
    /// The kernel's own pages.
    #[serde(deserialize_with = "de::opt_counts")]
    pub kernel: Option<Vec<u64>>,
    /// Pages nothing could be said about.
    #[serde(deserialize_with = "de::opt_counts")]
    pub unreadable: Option<Vec<u64>>,
}

/// What dom0's `depmig migrate` saw of the migration (`cli`); times are
/// dom0's wall clock, Unix ms.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CommandFigures {
    /// The guest's name.
    #[serde(deserialize_with = "de::text")]
    pub guest: Option<String>,
    /// Its domain id at the source.
    #[serde(deserialize_with = "de::opt_count")]
    pub source_domid: Option<u64>,
    /// The shell's domain id (the guest's after the migration).
    #[serde(deserialize_with = "de::opt_count")]
    pub shell_domid: Option<u64>,
    /// The mode the migration ran in.
    #[serde(deserialize_with = "de::text")]
    pub mode: Option<String>,
    /// The mode asked for, when the migration ran in another: a mode that
    /// needs the guest agent falls back to `baseline` without one.
    #[serde(deserialize_with = "de::text")]
    pub requested_mode: Option<String>,
    /// Why the migration did not run in the mode asked for.
    #[serde(deserialize_with = "de::text")]
    pub mode_fallback: Option<String>,
    /// The stop policy asked for.
    #[serde(deserialize_with = "de::text")]
    pub policy: Option<String>,
    /// `migrated` or `rolled-back`.
    #[serde(deserialize_with = "de::text")]
    pub outcome: Option<String>,
    /// Why the migration was rolled back.
    #[serde(deserialize_with = "de::text")]
    pub reason: Option<String>,
    /// The source appliance's result line.
    #[serde(deserialize_with = "de::text")]
    pub source_result: Option<String>,
    /// The last round seen in the source's progress.
    #[serde(deserialize_with = "de::opt_count")]
    pub last_round_seen: Option<u64>,
    /// Why the report has no figures of the source appliance's.
    #[serde(deserialize_with = "de::text")]
    pub figures_missing: Option<String>,
    /// The command's polling period, ms.
    #[serde(deserialize_with = "de::opt_count")]
    pub poll_interval_ms: Option<u64>,
    /// `migrate/go` written to the source.
    #[serde(deserialize_with = "de::opt_count")]
    pub go_unix_ms: Option<u64>,
    /// The source first seen in state `final` (the guest suspended).
    #[serde(deserialize_with = "de::opt_count")]
    pub final_seen_unix_ms: Option<u64>,
    /// The source's result first seen.
    #[serde(deserialize_with = "de::opt_count")]
    pub result_seen_unix_ms: Option<u64>,
    /// The source guest seen gone after `xl destroy`.
    #[serde(deserialize_with = "de::opt_count")]
    pub source_destroyed_unix_ms: Option<u64>,
    /// `xl unpause` of the shell returned (two hosts: the destination's
    /// time of it on the source's clock, or when its answer arrived).
    #[serde(deserialize_with = "de::opt_count")]
    pub shell_unpaused_unix_ms: Option<u64>,
    /// Two hosts: the unpause on the destination's clock.
    #[serde(deserialize_with = "de::opt_count")]
    pub destination_unpaused_unix_ms: Option<u64>,
    /// Two hosts: the destination's clock minus the source's, ms, from the
    /// status exchange with the shortest round trip.
    #[serde(deserialize_with = "de::opt_int")]
    pub destination_clock_offset_ms: Option<i64>,
    /// Two hosts: how far off that offset may be (half that round trip), ms.
    #[serde(deserialize_with = "de::opt_count")]
    pub destination_clock_uncertainty_ms: Option<u64>,
    /// `go` until the shell ran: the migration as the operator sees it, ms.
    #[serde(deserialize_with = "de::opt_count")]
    pub total_time_ms: Option<u64>,
    /// The guest seen suspended until the shell unpaused (an upper bound of
    /// the downtime, coarsened by the polling period), ms.
    #[serde(deserialize_with = "de::opt_count")]
    pub downtime_ms: Option<u64>,
    /// The source's result seen until the shell unpaused: dom0's own
    /// share, ms.
    #[serde(deserialize_with = "de::opt_count")]
    pub switchover_ms: Option<u64>,
    /// The guest suspended, by the source appliance's event (Xen's wall
    /// clock), until the shell unpaused (dom0's), ms.
    #[serde(deserialize_with = "de::figure")]
    pub guest_downtime_ms: Option<Number>,
}

impl MigrationReport {
    /// The report as compact JSON: what the appliance publishes and dom0
    /// writes. Empty if serde_json refuses it, which it does only for maps
    /// with keys other than strings, of which a report has none; an empty
    /// text is refused by every reader in turn, so nothing half-written
    /// passes for a report.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl fmt::Display for MigrationReport {
    /// [`MigrationReport::to_json`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_json())
    }
}

/// Why a report's field is refused as it is read; the reader puts the
/// field's path (`depmig.census.user[2]`) before the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// is not a string
    NotString,
    /// is neither a string nor null
    NotText,
    /// is not a non-negative integer
    NotCount,
    /// is neither a non-negative integer nor null
    NotOptCount,
    /// is neither an integer nor null
    NotOptInt,
    /// is neither true, false nor null
    NotFlag,
    /// is neither a finite non-negative number nor null
    NotFigure,
    /// is not an array of non-negative integers
    NotCounts,
    /// is neither an array of non-negative integers nor null
    NotOptCounts,
    /// Not an array of at most [`MAX_LISTED_FRAMES`] strings, nor null.
    NotOptTexts,
    /// is not an object
    NotObject,
    /// is not an array of objects
    NotObjects,
    /// has more entries than a report may have rounds
    TooLong,
}

impl FieldError {
    /// The message (the variant's doc).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldError::NotString => "is not a string",
            FieldError::NotText => "is neither a string nor null",
            FieldError::NotCount => "is not a non-negative integer",
            FieldError::NotOptCount => "is neither a non-negative integer nor null",
            FieldError::NotOptInt => "is neither an integer nor null",
            FieldError::NotFlag => "is neither true, false nor null",
            FieldError::NotFigure => "is neither a finite non-negative number nor null",
            FieldError::NotCounts => "is not an array of non-negative integers",
            FieldError::NotOptCounts => "is neither an array of non-negative integers nor null",
            FieldError::NotOptTexts => "is neither an array of at most 64 strings nor null",
            FieldError::NotObject => "is not an object",
            FieldError::NotObjects => "is not an array of objects",
            FieldError::TooLong => "has more entries than a report may have rounds",
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    /// A report with every object present and every kind of field filled.
    fn full() -> MigrationReport {
        MigrationReport {
            schema: SCHEMA.into(),
            migrator: "depmig".into(),
            scenario: Some("s \"1\"\n".into()),
            workload: None,
            link_rate_bytes_per_s: Some(5_000_000u64.into()),
            page_size: PAGE_SIZE,
            rounds: 2,
            final_round: Some(2),
            per_round_pages: vec![100, 7],
            per_round: vec![
                RoundFigures {
                    round: 1,
                    pages: 100,
                    pfns: Some(101),
                    bytes: Some(409_600),
                    records: Some(1),
                    start_ms: Some(0),
                    duration_ms: Some(10),
                },
                RoundFigures {
                    round: 2,
                    pages: 7,
                    ..RoundFigures::default()
                },
            ],
            total_pages: 107,
            total_pfns: None,
            page_bytes: Some((107 * PAGE_SIZE).into()),
            stream_bytes: Some(500_000u64.into()),
            total_time_ms: Number::from_f64(12.5),
            downtime_ms: Some(3u64.into()),
            downtime_method: Some("m".into()),
            downtime_xl_list_ms: None,
            downtime_final_round_ms: None,
            poll_interval_ms: None,
            events: Some(Events {
                suspended_unix_ms: Some(1_800_000_000_000),
                ..Events::default()
            }),
            stream: Some(StreamFigures {
                complete: Some(true),
                ..StreamFigures::default()
            }),
            depmig: Some(SourceFigures {
                mode: Some("paper-analysis".into()),
                per_round_dirty: Some(vec![110, 8]),
                census: Some(Census {
                    round: Some(vec![2]),
                    ..Census::default()
                }),
                verify: Some(VerifyFigures {
                    result: Some("mismatch".into()),
                    mismatched_frames_listed: Some(vec![7, 4095]),
                    mismatched_frames_classes: Some(vec!["data/hole".into(), "data/data".into()]),
                    destination_ms_per_gib: Some(900),
                    ..VerifyFigures::default()
                }),
                ..SourceFigures::default()
            }),
            cli: Some(CommandFigures {
                outcome: Some("migrated".into()),
                guest_downtime_ms: Some(4u64.into()),
                ..CommandFigures::default()
            }),
        }
    }

    fn read(text: &str) -> Result<MigrationReport, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_report_reads_back_as_written() {
        let r = full();
        assert_eq!(read(&r.to_json()), Ok(r.clone()));
        assert_eq!(r.to_string(), r.to_json());
        // Without the optional objects: absent, not null, and still the same.
        let bare = MigrationReport {
            depmig: None,
            cli: None,
            ..r
        };
        let text = bare.to_json();
        assert!(!text.contains("\"depmig\":") && !text.contains("\"cli\":"));
        assert_eq!(read(&text), Ok(bare));
        // Without verification: no `verify` entry at all.
        let mut unverified = full();
        if let Some(d) = unverified.depmig.as_mut() {
            d.verify = None;
        }
        let text = unverified.to_json();
        assert!(!text.contains("\"verify\""), "{text}");
        assert_eq!(read(&text), Ok(unverified));
    }

    #[test]
    fn a_small_report_is_written_exactly() {
        let r = MigrationReport {
            schema: SCHEMA.into(),
            migrator: "xl-migrate".into(),
            page_size: PAGE_SIZE,
            rounds: 1,
            final_round: Some(1),
            per_round_pages: vec![5],
            per_round: vec![RoundFigures {
                round: 1,
                pages: 5,
                ..RoundFigures::default()
            }],
            total_pages: 5,
            downtime_ms: Number::from_f64(0.5),
            ..MigrationReport::default()
        };
        assert_eq!(
            r.to_json(),
            concat!(
                r#"{"schema":"depmig-migration-report/1","migrator":"xl-migrate","scenario":null,"#,
                r#""workload":null,"link_rate_bytes_per_s":null,"page_size":4096,"rounds":1,"#,
                r#""final_round":1,"per_round_pages":[5],"per_round":[{"round":1,"pages":5,"#,
                r#""pfns":null,"bytes":null,"records":null,"start_ms":null,"duration_ms":null}],"#,
                r#""total_pages":5,"total_pfns":null,"page_bytes":null,"stream_bytes":null,"#,
                r#""total_time_ms":null,"downtime_ms":0.5,"downtime_method":null,"#,
                r#""downtime_xl_list_ms":null,"downtime_final_round_ms":null,"#,
                r#""poll_interval_ms":null,"events":null,"stream":null}"#
            )
        );
    }

    #[test]
    fn unknown_entries_are_skipped_and_absent_ones_are_none() {
        let r = read(concat!(
            r#"{"schema":"x","migrator":"m","page_size":4096,"rounds":0,"per_round_pages":[],"#,
            r#""per_round":[],"total_pages":0,"extra":{"deep":[[[[1e400]]]]},"#,
            r#""depmig":{"result":"failed","later":true}}"#
        ))
        .unwrap();
        assert_eq!(r.final_round, None);
        assert_eq!(r.stream, None);
        let d = r.depmig.unwrap();
        assert_eq!(d.result.as_deref(), Some("failed"));
        assert_eq!((d.mode, d.census), (None, None));
    }

    #[test]
    fn each_field_refuses_other_types_with_its_message() {
        let base = full().to_json();
        let cases: &[(&str, &str, FieldError)] = &[
            (
                r#""migrator":"depmig""#,
                r#""migrator":7"#,
                FieldError::NotString,
            ),
            (r#""scenario":"s"#, r#""scenario":["s"#, FieldError::NotText),
            (r#""rounds":2"#, r#""rounds":-2"#, FieldError::NotCount),
            (r#""rounds":2"#, r#""rounds":2.5"#, FieldError::NotCount),
            (
                r#""final_round":2"#,
                r#""final_round":"2""#,
                FieldError::NotOptCount,
            ),
            (r#""complete":true"#, r#""complete":1"#, FieldError::NotFlag),
            (
                r#""downtime_ms":3"#,
                r#""downtime_ms":-3"#,
                FieldError::NotFigure,
            ),
            (
                r#""downtime_ms":3"#,
                r#""downtime_ms":1e400"#,
                FieldError::NotFigure,
            ),
            (
                r#""downtime_ms":3"#,
                r#""downtime_ms":{}"#,
                FieldError::NotFigure,
            ),
            (
                r#""per_round_pages":[100,7]"#,
                r#""per_round_pages":null"#,
                FieldError::NotCounts,
            ),
            (
                r#""per_round_pages":[100,7]"#,
                r#""per_round_pages":[100,-7]"#,
                FieldError::NotCount,
            ),
            (
                r#""per_round_dirty":[110,8]"#,
                r#""per_round_dirty":{}"#,
                FieldError::NotOptCounts,
            ),
            (
                r#""per_round":["#,
                r#""per_round":[7,"#,
                FieldError::NotObject,
            ),
            (
                r#""per_round":["#,
                r#""per_round":{"x":["#,
                FieldError::NotObjects,
            ),
            (
                r#""depmig":{"#,
                r#""depmig":[],"x":{"#,
                FieldError::NotObject,
            ),
            (r#""cli":{"#, r#""cli":"x","y":{"#, FieldError::NotObject),
            (
                r#""mismatched_frames_classes":["#,
                r#""mismatched_frames_classes":[7,"#,
                FieldError::NotOptTexts,
            ),
        ];
        for (from, to, why) in cases {
            assert!(base.contains(from), "{from} not in {base}");
            let text = base.replacen(from, to, 1);
            match read(&text) {
                Err(e) => assert!(e.starts_with(why.as_str()), "{to}: {e}"),
                Ok(_) => panic!("{to}: accepted"),
            }
        }
    }

    #[test]
    fn per_round_arrays_stop_at_the_round_cap() {
        let n = MAX_ROUNDS as usize;
        let list = |n: usize| vec!["0"; n].join(",");
        let text = |n: usize| {
            alloc::format!(
                r#"{{"schema":"x","migrator":"m","page_size":4096,"rounds":0,"per_round_pages":[{}],"per_round":[],"total_pages":0}}"#,
                list(n)
            )
        };
        assert_eq!(read(&text(n)).map(|r| r.per_round_pages.len()), Ok(n));
        let e = read(&text(n + 1)).unwrap_err();
        assert!(e.starts_with(FieldError::TooLong.as_str()), "{e}");
        let rounds = vec![r#"{"round":1,"pages":0}"#; n + 1].join(",");
        let e = read(&alloc::format!(
            r#"{{"schema":"x","migrator":"m","page_size":4096,"rounds":0,"per_round_pages":[],"per_round":[{rounds}],"total_pages":0}}"#
        ))
        .unwrap_err();
        assert!(e.starts_with(FieldError::TooLong.as_str()), "{e}");
    }

    #[test]
    fn a_field_given_twice_is_refused() {
        let text = full()
            .to_json()
            .replacen(r#""rounds":2"#, r#""rounds":2,"rounds":3"#, 1);
        assert!(read(&text)
            .unwrap_err()
            .contains("duplicate field `rounds`"));
    }
}
