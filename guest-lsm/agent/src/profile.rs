//! Builds the kernel profile: the addresses and struct offsets a reader
//! outside the guest needs to walk Linux's task list, page tables and page
//! descriptors. Offsets come from the kernel's BTF, addresses from
//! `/proc/kallsyms`, variable values (page_offset_base, ...) from a BPF
//! probe read. Its layout, and the encoding published in the table's page
//! 1, are the guest ↔ appliance contract in `depmig-guest-abi`.

use depmig_guest_abi::profile::{
    KernelProfile, PageLayout, PageTypes, TaskLayout, INVERTED_BUDDY_MASK, INVERTED_BUDDY_VALUE,
    LINK_TEXT, MAX_ORDER_BOUND, PGTY_MAPCOUNT_UNDERFLOW, TOP_BYTE_MASK,
};

use crate::btf::{Btf, BtfError};

/// Errors building the profile.
#[derive(Debug, PartialEq, Eq)]
pub enum ProfileError {
    /// A struct or member the profile needs is not in the kernel's BTF.
    Btf(&'static str, &'static str, BtfError),
    /// A symbol the profile needs is missing from `/proc/kallsyms`.
    NoSymbol(&'static str),
    /// `/proc/kallsyms` shows zero addresses (kptr_restrict hides them).
    HiddenSymbols,
    /// The kernel's BTF has no `enum pagetype` (6.12's page types) and its
    /// release is outside 4.18 to 6.8 (the inverted-bit page types).
    UnknownKernel(String),
    /// The kernel's `enum pagetype` is not 6.12's scheme: `PGTY_buddy`
    /// (carried; -1 when missing) outside 0xf0..0xff, or
    /// `PGTY_mapcount_underflow` (carried) not 0xff.
    UnknownPageTypes(i64, i64),
    /// `struct page`'s `page_type` does not share its word with
    /// `_mapcount`, which a free block's other pages are told by.
    PageTypeNotMapcount,
    /// `struct zone`'s `free_area` array has a length (carried) that gives
    /// no largest order in 1..=MAX_ORDER_BOUND.
    BadFreeArea(u32),
}

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProfileError::Btf(s, m, e) => write!(f, "kernel BTF lacks {s}.{m}: {e}"),
            ProfileError::NoSymbol(s) => write!(f, "/proc/kallsyms has no symbol {s}"),
            ProfileError::HiddenSymbols => f.write_str(
                "/proc/kallsyms hides addresses (kernel.kptr_restrict); run as root with kptr_restrict<2",
            ),
            ProfileError::UnknownKernel(r) => write!(
                f,
                "kernel {r}: free-page (PageBuddy) encoding cannot be identified: its BTF has no \
                 `enum pagetype` (Linux 6.12's page types) and its release is not 4.18 to 6.8 \
                 (the inverted-bit page types); this agent knows no other"
            ),
            ProfileError::UnknownPageTypes(b, u) => write!(
                f,
                "kernel BTF's enum pagetype is not Linux 6.12's scheme (PGTY_buddy {b:#x}, \
                 PGTY_mapcount_underflow {u:#x}; expected 0xf0..0xff and 0xff): free-page \
                 encoding unknown to this agent"
            ),
            ProfileError::PageTypeNotMapcount => f.write_str(
                "kernel BTF: struct page's page_type does not share its word with _mapcount; \
                 free-page encoding unknown to this agent",
            ),
            ProfileError::BadFreeArea(n) => write!(
                f,
                "kernel BTF: struct zone.free_area has {n} entries, expected 2..={}",
                MAX_ORDER_BOUND + 1
            ),
        }
    }
}

/// Symbols the profile needs, in the order of [`Symbols`]'s fields.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Symbols {
    /// `_text`.
    pub text: u64,
    /// `init_task`.
    pub init_task: u64,
    /// `page_offset_base` (the variable's address).
    pub page_offset_base: u64,
    /// `vmemmap_base` (address).
    pub vmemmap_base: u64,
    /// `vmalloc_base` (address).
    pub vmalloc_base: u64,
    /// `phys_base` (address).
    pub phys_base: u64,
    /// `__pgtable_l5_enabled` (address; 0 when the kernel has no 5-level support).
    pub l5_enabled: u64,
    /// `init_top_pgt`.
    pub init_top_pgt: u64,
}

/// Parses `/proc/kallsyms` text for the profile's symbols.
pub fn parse_kallsyms(text: &str) -> Result<Symbols, ProfileError> {
    let mut s = Symbols::default();
    let mut any_nonzero = false;
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(addr), Some(_ty), Some(name)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if it.next().is_some() {
            continue; // module symbols carry "[module]"
        }
        let Ok(a) = u64::from_str_radix(addr, 16) else {
            continue;
        };
        any_nonzero |= a != 0;
        let slot = match name {
            "_text" => &mut s.text,
            "init_task" => &mut s.init_task,
            "page_offset_base" => &mut s.page_offset_base,
            "vmemmap_base" => &mut s.vmemmap_base,
            "vmalloc_base" => &mut s.vmalloc_base,
            "phys_base" => &mut s.phys_base,
            "__pgtable_l5_enabled" => &mut s.l5_enabled,
            "init_top_pgt" => &mut s.init_top_pgt,
            _ => continue,
        };
        if *slot == 0 {
            *slot = a;
        }
    }
    if !any_nonzero {
        return Err(ProfileError::HiddenSymbols);
    }
    for (v, n) in [
        (s.text, "_text"),
        (s.init_task, "init_task"),
        (s.page_offset_base, "page_offset_base"),
        (s.vmemmap_base, "vmemmap_base"),
        (s.vmalloc_base, "vmalloc_base"),
        (s.phys_base, "phys_base"),
        (s.init_top_pgt, "init_top_pgt"),
    ] {
        if v == 0 {
            return Err(ProfileError::NoSymbol(n));
        }
    }
    Ok(s)
}

/// Values of kernel variables, read in the guest.
#[derive(Debug, Default, Clone, Copy)]
pub struct Values {
    /// `page_offset_base`.
    pub page_offset_base: u64,
    /// `vmemmap_base`.
    pub vmemmap_base: u64,
    /// `vmalloc_base`.
    pub vmalloc_base: u64,
    /// `phys_base`.
    pub phys_base: u64,
    /// `__pgtable_l5_enabled` (0 or 1).
    pub l5_enabled: u64,
}

/// How the guest kernel marks free buddy blocks: its page-type scheme,
/// the PageBuddy test on `page_type` and the largest block order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FreePageRule {
    /// The page-type scheme.
    pub page_types: PageTypes,
    /// A free block's head has `page_type & mask == value`.
    pub mask: u32,
    /// See `mask`.
    pub value: u32,
    /// Largest order of a free block.
    pub max_order: u32,
}

/// Identifies the kernel's free-page encoding from its BTF, positively or
/// not at all:
///
/// * `struct page`'s `page_type` must share its word with `_mapcount`
///   (both schemes leave a free block's other pages at `_mapcount`'s
///   reset -1, which the walker checks);
/// * the largest order is `struct zone`'s `free_area` length minus one
///   (6.1's `MAX_ORDER` lists, 6.12's `NR_PAGE_ORDERS`);
/// * an `enum pagetype` (Linux 6.12 on) means the type sits in
///   `page_type`'s top byte, PageBuddy when it is `PGTY_buddy`; the enum
///   must be 6.12's scheme (`PGTY_buddy` from 0xf0, below
///   `PGTY_mapcount_underflow` 0xff);
/// * without it, the macros of 4.18 to 6.8's inverted-bit scheme leave no
///   trace in BTF, so the release must say 4.18 to 6.8 (6.9 to 6.11 used
///   other encodings and are refused).
pub fn free_page_rule(btf: &Btf, release: &str) -> Result<FreePageRule, ProfileError> {
    let m = |s: &'static str, f: &'static str| {
        btf.member_offset(s, f)
            .map_err(|e| ProfileError::Btf(s, f, e))
    };
    if m("page", "page_type")? != m("page", "_mapcount")? {
        return Err(ProfileError::PageTypeNotMapcount);
    }
    let lists = btf
        .member_array_len("zone", "free_area")
        .map_err(|e| ProfileError::Btf("zone", "free_area", e))?;
    if !(2..=MAX_ORDER_BOUND + 1).contains(&lists) {
        return Err(ProfileError::BadFreeArea(lists));
    }
    let max_order = lists - 1;
    if btf.has_enum("pagetype") {
        let buddy = btf.enumerator("pagetype", "PGTY_buddy").unwrap_or(-1);
        let under = btf
            .enumerator("pagetype", "PGTY_mapcount_underflow")
            .unwrap_or(-1);
        let value = u32::try_from(buddy).ok().and_then(|b| b.checked_shl(24));
        return match value {
            Some(value)
                if buddy >> 8 == 0
                    && under == i64::from(PGTY_MAPCOUNT_UNDERFLOW)
                    && PageTypes::TopByte.is_buddy_rule(TOP_BYTE_MASK, value) =>
            {
                Ok(FreePageRule {
                    page_types: PageTypes::TopByte,
                    mask: TOP_BYTE_MASK,
                    value,
                    max_order,
                })
            }
            _ => Err(ProfileError::UnknownPageTypes(buddy, under)),
        };
    }
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let inverted = (major == 4 && minor >= 18) || major == 5 || (major == 6 && minor <= 8);
    if !inverted {
        return Err(ProfileError::UnknownKernel(release.to_string()));
    }
    Ok(FreePageRule {
        page_types: PageTypes::InvertedBit,
        mask: INVERTED_BUDDY_MASK,
        value: INVERTED_BUDDY_VALUE,
        max_order,
    })
}

/// Builds the profile (published as [`KernelProfile::encode`]).
pub fn build(
    btf: &Btf,
    syms: &Symbols,
    vals: &Values,
    release: &str,
) -> Result<KernelProfile, ProfileError> {
    let m = |s: &'static str, f: &'static str| {
        btf.member_offset(s, f)
            .map_err(|e| ProfileError::Btf(s, f, e))
    };
    let sz = |s: &'static str| {
        btf.struct_size(s)
            .map_err(|e| ProfileError::Btf(s, "(size)", e))
    };
    let rule = free_page_rule(btf, release)?;
    let task = TaskLayout {
        size: sz("task_struct")?,
        tasks: m("task_struct", "tasks")?,
        pid: m("task_struct", "pid")?,
        tgid: m("task_struct", "tgid")?,
        comm: m("task_struct", "comm")?,
        comm_len: 16,
        mm: m("task_struct", "mm")?,
        active_mm: m("task_struct", "active_mm")?,
    };
    let mm_pgd = m("mm_struct", "pgd")?;
    let page = PageLayout {
        size: sz("page")?,
        flags: m("page", "flags")?,
        page_type: m("page", "page_type")?,
        private: m("page", "private")?,
        page_types: rule.page_types,
        buddy_mask: rule.mask,
        buddy_value: rule.value,
    };
    // The release, NUL padded; at most 63 bytes, so always NUL terminated.
    let mut rel = [0u8; 64];
    for (d, c) in rel.iter_mut().take(63).zip(release.as_bytes()) {
        *d = *c;
    }
    Ok(KernelProfile {
        kaslr_slide: syms.text.wrapping_sub(LINK_TEXT),
        text: syms.text,
        init_task: syms.init_task,
        page_offset_base: vals.page_offset_base,
        vmemmap_base: vals.vmemmap_base,
        vmalloc_base: vals.vmalloc_base,
        phys_base: vals.phys_base,
        levels: if vals.l5_enabled & 0xffff_ffff != 0 {
            5
        } else {
            4
        },
        task,
        mm_pgd,
        page,
        init_top_pgt: syms.init_top_pgt,
        max_order: rule.max_order,
        release: rel,
    })
}

/// Human-readable rendering of a profile (for logs and the publish file).
pub fn render(p: &KernelProfile) -> String {
    format!(
        "kaslr_slide={:#x} text={:#x} init_task={:#x} page_offset_base={:#x} vmemmap_base={:#x} \
         vmalloc_base={:#x} phys_base={:#x} levels={} task_struct.size={} .tasks={} .pid={} .tgid={} \
         .comm={} .mm={} .active_mm={} mm_struct.pgd={} page.size={} .flags={} .page_type={} \
         .private={} page_types={:?} buddy=(page_type&{:#x})=={:#x} max_order={} init_top_pgt={:#x}",
        p.kaslr_slide,
        p.text,
        p.init_task,
        p.page_offset_base,
        p.vmemmap_base,
        p.vmalloc_base,
        p.phys_base,
        p.levels,
        p.task.size,
        p.task.tasks,
        p.task.pid,
        p.task.tgid,
        p.task.comm,
        p.task.mm,
        p.task.active_mm,
        p.mm_pgd,
        p.page.size,
        p.page.flags,
        p.page.page_type,
        p.page.private,
        p.page.page_types,
        p.page.buddy_mask,
        p.page.buddy_value,
        p.max_order,
        p.init_top_pgt,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::build::BtfBuilder;

    #[test]
    fn kallsyms_parsing() {
        let t = "ffffffff9a000000 T _text\nffffffff9c80a940 D init_task\n\
                 ffffffff9c41b728 D page_offset_base\nffffffff9c41b718 D vmemmap_base\n\
                 ffffffff9c41b720 D vmalloc_base\nffffffff9c416010 D phys_base\n\
                 ffffffff9c41b730 D __pgtable_l5_enabled\nffffffff9c80e000 D init_top_pgt\n\
                 ffffffffc0000000 t foo\t[mod]\n";
        let s = parse_kallsyms(t).unwrap();
        assert_eq!(s.text, 0xffffffff9a000000);
        assert_eq!(s.text - LINK_TEXT, 0x1900_0000);
        assert_eq!(s.init_top_pgt, 0xffffffff9c80e000);
        let hidden = t
            .lines()
            .map(|l| format!("0000000000000000{}\n", &l[16..]))
            .collect::<String>();
        assert!(matches!(
            parse_kallsyms(&hidden),
            Err(ProfileError::HiddenSymbols)
        ));
        assert!(matches!(
            parse_kallsyms("ffffffff81000000 T _text\n"),
            Err(ProfileError::NoSymbol(_))
        ));
    }

    /// A kernel's BTF reduced to what [`free_page_rule`] reads: `struct
    /// page` (6.1's and 6.12's layout, or `page_type` apart from
    /// `_mapcount`), `struct zone` with `lists` free lists, and an `enum
    /// pagetype` when given.
    fn kernel_btf(shared: bool, lists: u32, pagetype: Option<&[(&str, i32)]>) -> Btf {
        let mut b = BtfBuilder::new();
        let int = b.int("unsigned int", 4);
        let ulong = b.int("long unsigned int", 8);
        let atomic = b.record(false, "", 4, &[("counter", int, 0)]);
        let word = b.record(
            true,
            "",
            4,
            &[("page_type", int, 0), ("_mapcount", atomic, 0)],
        );
        let members: &[(&str, u32, u32)] = if shared {
            &[("flags", ulong, 0), ("private", ulong, 40), ("", word, 48)]
        } else {
            &[
                ("flags", ulong, 0),
                ("private", ulong, 40),
                ("page_type", int, 48),
                ("_mapcount", atomic, 52),
            ]
        };
        b.record(false, "page", 64, members);
        let fa = b.record(false, "free_area", 88, &[("nr_free", ulong, 80)]);
        let arr = b.array(fa, int, lists);
        b.record(false, "zone", 1600, &[("free_area", arr, 192)]);
        if let Some(e) = pagetype {
            b.enumeration("pagetype", e);
        }
        Btf::parse(&b.blob()).unwrap()
    }

    /// Linux 6.12's `enum pagetype` (include/linux/page-flags.h).
    const PAGETYPE_6_12: &[(&str, i32)] = &[
        ("PGTY_buddy", 0xf0),
        ("PGTY_offline", 0xf1),
        ("PGTY_table", 0xf2),
        ("PGTY_guard", 0xf3),
        ("PGTY_hugetlb", 0xf4),
        ("PGTY_slab", 0xf5),
        ("PGTY_zsmalloc", 0xf6),
        ("PGTY_unaccepted", 0xf7),
        ("PGTY_mapcount_underflow", 0xff),
    ];

    #[test]
    fn free_page_rule_of_6_12_comes_from_enum_pagetype() {
        let btf = kernel_btf(true, 11, Some(PAGETYPE_6_12));
        let want = FreePageRule {
            page_types: PageTypes::TopByte,
            mask: 0xff00_0000,
            value: 0xf000_0000,
            max_order: 10,
        };
        // The enum decides, whatever the release string says.
        assert_eq!(free_page_rule(&btf, "6.12.117+deb13-amd64"), Ok(want));
        assert_eq!(free_page_rule(&btf, "garbage"), Ok(want));
        // The order follows the free lists.
        let btf = kernel_btf(true, 13, Some(PAGETYPE_6_12));
        assert_eq!(free_page_rule(&btf, "6.12.1").map(|r| r.max_order), Ok(12));
    }

    #[test]
    fn free_page_rule_of_6_1_needs_its_release() {
        let btf = kernel_btf(true, 11, None);
        assert_eq!(
            free_page_rule(&btf, "6.1.0-57-amd64"),
            Ok(FreePageRule {
                page_types: PageTypes::InvertedBit,
                mask: 0xf000_0080,
                value: 0xf000_0000,
                max_order: 10,
            })
        );
        assert!(free_page_rule(&btf, "4.18.0").is_ok());
        assert!(free_page_rule(&btf, "6.8.12").is_ok());
        // 6.9 to 6.11 had other encodings and no enum pagetype; a 6.12
        // without the enum is not 6.12's scheme either.
        for r in [
            "6.9.0",
            "6.11.5",
            "6.12.117+deb13-amd64",
            "4.17.0",
            "3.16.0",
            "garbage",
            "",
        ] {
            assert_eq!(
                free_page_rule(&btf, r),
                Err(ProfileError::UnknownKernel(r.to_string())),
                "{r}"
            );
        }
    }

    #[test]
    fn free_page_rule_refuses_what_it_cannot_identify() {
        // page_type apart from _mapcount.
        let btf = kernel_btf(false, 11, Some(PAGETYPE_6_12));
        assert_eq!(
            free_page_rule(&btf, "6.12.1"),
            Err(ProfileError::PageTypeNotMapcount)
        );
        // Free lists giving no usable order.
        for n in [0, 1, 22] {
            let btf = kernel_btf(true, n, None);
            assert_eq!(
                free_page_rule(&btf, "6.1.0"),
                Err(ProfileError::BadFreeArea(n))
            );
        }
        // An enum pagetype that is not 6.12's.
        for (e, b, u) in [
            (
                &[("PGTY_buddy", 0x80), ("PGTY_mapcount_underflow", 0xff)][..],
                0x80,
                0xff,
            ),
            (
                &[("PGTY_buddy", 0xff), ("PGTY_mapcount_underflow", 0xff)][..],
                0xff,
                0xff,
            ),
            (
                &[("PGTY_buddy", 0x1f0), ("PGTY_mapcount_underflow", 0xff)][..],
                0x1f0,
                0xff,
            ),
            (
                &[("PGTY_buddy", -16), ("PGTY_mapcount_underflow", 0xff)][..],
                -16,
                0xff,
            ),
            (&[("PGTY_buddy", 0xf0)][..], 0xf0, -1),
            (
                &[("PGTY_offline", 0xf1), ("PGTY_mapcount_underflow", 0xff)][..],
                -1,
                0xff,
            ),
        ] {
            let btf = kernel_btf(true, 11, Some(e));
            assert_eq!(
                free_page_rule(&btf, "6.12.1"),
                Err(ProfileError::UnknownPageTypes(b, u)),
                "{e:?}"
            );
        }
        // Messages say what is missing.
        let msg = ProfileError::UnknownKernel("6.10.3".into()).to_string();
        assert!(
            msg.contains("6.10.3") && msg.contains("enum pagetype"),
            "{msg}"
        );
    }
}
