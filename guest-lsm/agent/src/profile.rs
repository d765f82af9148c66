//! The kernel profile: the addresses and struct offsets a reader outside the
//! guest needs to walk Linux's task list, page tables and page descriptors.
//! Offsets come from the kernel's BTF, addresses from `/proc/kallsyms`,
//! variable values (page_offset_base, ...) from a BPF probe read.

use crate::btf::{Btf, BtfError};

/// Link-time address of `_text` on x86-64 (`__START_KERNEL_map` +
/// `CONFIG_PHYSICAL_START`, 16 MiB); the KASLR slide is relative to it.
pub const LINK_TEXT: u64 = 0xffff_ffff_8100_0000;
/// Profile magic, the ASCII bytes "DMPROF01".
pub const MAGIC: [u8; 8] = *b"DMPROF01";
/// Profile layout version.
pub const VERSION: u32 = 1;

/// Byte offsets of the profile page's fields.
pub mod off {
    /// `[u8; 8]` magic.
    pub const MAGIC: usize = 0x000;
    /// u32 version.
    pub const VERSION: usize = 0x008;
    /// u32 bytes of the page in use.
    pub const SIZE: usize = 0x00c;
    /// u64 KASLR slide of the kernel image (runtime `_text` - link-time `_text`).
    pub const KASLR_SLIDE: usize = 0x010;
    /// u64 runtime address of `_text`.
    pub const TEXT: usize = 0x018;
    /// u64 address of `init_task`.
    pub const INIT_TASK: usize = 0x020;
    /// u64 value of `page_offset_base` (start of the direct map).
    pub const PAGE_OFFSET_BASE: usize = 0x028;
    /// u64 value of `vmemmap_base` (the `struct page` array).
    pub const VMEMMAP_BASE: usize = 0x030;
    /// u64 value of `vmalloc_base`.
    pub const VMALLOC_BASE: usize = 0x038;
    /// u64 value of `phys_base` (physical relocation of the kernel image).
    pub const PHYS_BASE: usize = 0x040;
    /// u32 paging levels (4 or 5).
    pub const PGTABLE_LEVELS: usize = 0x048;
    /// u32 `sizeof(struct task_struct)`.
    pub const TASK_SIZE: usize = 0x04c;
    /// u32 `offsetof(struct task_struct, tasks)`.
    pub const TASK_TASKS: usize = 0x050;
    /// u32 `offsetof(struct task_struct, pid)`.
    pub const TASK_PID: usize = 0x054;
    /// u32 `offsetof(struct task_struct, tgid)`.
    pub const TASK_TGID: usize = 0x058;
    /// u32 `offsetof(struct task_struct, comm)`.
    pub const TASK_COMM: usize = 0x05c;
    /// u32 `offsetof(struct task_struct, mm)`.
    pub const TASK_MM: usize = 0x060;
    /// u32 `offsetof(struct task_struct, active_mm)`.
    pub const TASK_ACTIVE_MM: usize = 0x064;
    /// u32 `offsetof(struct mm_struct, pgd)`.
    pub const MM_PGD: usize = 0x068;
    /// u32 `sizeof(struct page)`.
    pub const PAGE_SIZE: usize = 0x06c;
    /// u32 `offsetof(struct page, flags)`.
    pub const PAGE_FLAGS: usize = 0x070;
    /// u32 `offsetof(struct page, page_type)`.
    pub const PAGE_TYPE: usize = 0x074;
    /// u32 `offsetof(struct page, private)` (a free buddy block's order).
    pub const PAGE_PRIVATE: usize = 0x078;
    /// u32 mask: a page is a free buddy head when `page_type & MASK == VALUE`.
    pub const BUDDY_MASK: usize = 0x07c;
    /// u32 value for the buddy test.
    pub const BUDDY_VALUE: usize = 0x080;
    /// u32 length of `task_struct.comm`.
    pub const COMM_LEN: usize = 0x084;
    /// u64 address of `init_top_pgt` (the kernel's own top page table).
    pub const INIT_TOP_PGT: usize = 0x088;
    /// `[u8; 64]` kernel release (`uname -r`), NUL padded.
    pub const RELEASE: usize = 0x090;
    /// End of the fields.
    pub const END: usize = 0x0d0;
}

/// Errors building the profile.
#[derive(Debug)]
pub enum ProfileError {
    /// A struct or member the profile needs is not in the kernel's BTF.
    Btf(&'static str, &'static str, BtfError),
    /// A symbol the profile needs is missing from `/proc/kallsyms`.
    NoSymbol(&'static str),
    /// `/proc/kallsyms` shows zero addresses (kptr_restrict hides them).
    HiddenSymbols,
    /// The kernel release is one whose free-page encoding this agent does not know.
    UnknownKernel(String),
}

impl std::fmt::Display for ProfileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProfileError::Btf(s, m, e) => write!(f, "kernel BTF lacks {s}.{m}: {e}"),
            ProfileError::NoSymbol(s) => write!(f, "/proc/kallsyms has no symbol {s}"),
            ProfileError::HiddenSymbols => f.write_str(
                "/proc/kallsyms hides addresses (kernel.kptr_restrict); run as root with kptr_restrict<2",
            ),
            ProfileError::UnknownKernel(r) => {
                write!(f, "kernel {r}: free-page (PageBuddy) encoding unknown to this agent")
            }
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

/// `(mask, value)` of the PageBuddy test on `page_type` for a kernel release
/// ("6.1.0-56-amd64"): kernels 4.18 to 6.8 mark free buddy heads with
/// `page_type & (PAGE_TYPE_BASE | PG_buddy) == PAGE_TYPE_BASE`, i.e.
/// 0xf000_0000 and bit 0x80 clear; 6.9 changed the encoding.
pub fn buddy_rule(release: &str) -> Result<(u32, u32), ProfileError> {
    let mut it = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let minor: u32 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let known = (major == 4 && minor >= 18) || major == 5 || (major == 6 && minor <= 8);
    if known {
        Ok((0xf000_0080, 0xf000_0000))
    } else {
        Err(ProfileError::UnknownKernel(release.to_string()))
    }
}

/// Builds the profile page.
pub fn build(
    btf: &Btf,
    syms: &Symbols,
    vals: &Values,
    release: &str,
) -> Result<[u8; 4096], ProfileError> {
    let mut p = [0u8; 4096];
    let put32 = |p: &mut [u8; 4096], o: usize, v: u32| {
        p[o..o + 4].copy_from_slice(&v.to_le_bytes());
    };
    let put64 = |p: &mut [u8; 4096], o: usize, v: u64| {
        p[o..o + 8].copy_from_slice(&v.to_le_bytes());
    };
    let m = |s: &'static str, f: &'static str| {
        btf.member_offset(s, f)
            .map_err(|e| ProfileError::Btf(s, f, e))
    };
    let sz = |s: &'static str| {
        btf.struct_size(s)
            .map_err(|e| ProfileError::Btf(s, "(size)", e))
    };
    let (bmask, bval) = buddy_rule(release)?;
    // PANICS: every offset below is a constant from `off`, all < off::END <= 4096.
    p[off::MAGIC..off::MAGIC + 8].copy_from_slice(&MAGIC);
    put32(&mut p, off::VERSION, VERSION);
    put32(&mut p, off::SIZE, off::END as u32);
    put64(&mut p, off::KASLR_SLIDE, syms.text.wrapping_sub(LINK_TEXT));
    put64(&mut p, off::TEXT, syms.text);
    put64(&mut p, off::INIT_TASK, syms.init_task);
    put64(&mut p, off::PAGE_OFFSET_BASE, vals.page_offset_base);
    put64(&mut p, off::VMEMMAP_BASE, vals.vmemmap_base);
    put64(&mut p, off::VMALLOC_BASE, vals.vmalloc_base);
    put64(&mut p, off::PHYS_BASE, vals.phys_base);
    put32(
        &mut p,
        off::PGTABLE_LEVELS,
        if vals.l5_enabled & 0xffff_ffff != 0 {
            5
        } else {
            4
        },
    );
    put32(&mut p, off::TASK_SIZE, sz("task_struct")?);
    put32(&mut p, off::TASK_TASKS, m("task_struct", "tasks")?);
    put32(&mut p, off::TASK_PID, m("task_struct", "pid")?);
    put32(&mut p, off::TASK_TGID, m("task_struct", "tgid")?);
    put32(&mut p, off::TASK_COMM, m("task_struct", "comm")?);
    put32(&mut p, off::TASK_MM, m("task_struct", "mm")?);
    put32(&mut p, off::TASK_ACTIVE_MM, m("task_struct", "active_mm")?);
    put32(&mut p, off::MM_PGD, m("mm_struct", "pgd")?);
    put32(&mut p, off::PAGE_SIZE, sz("page")?);
    put32(&mut p, off::PAGE_FLAGS, m("page", "flags")?);
    put32(&mut p, off::PAGE_TYPE, m("page", "page_type")?);
    put32(&mut p, off::PAGE_PRIVATE, m("page", "private")?);
    put32(&mut p, off::BUDDY_MASK, bmask);
    put32(&mut p, off::BUDDY_VALUE, bval);
    put32(&mut p, off::COMM_LEN, 16);
    put64(&mut p, off::INIT_TOP_PGT, syms.init_top_pgt);
    let rel = release.as_bytes();
    let n = rel.len().min(63);
    p[off::RELEASE..off::RELEASE + n].copy_from_slice(&rel[..n]);
    Ok(p)
}

/// Human-readable rendering of a profile page (for logs and the publish file).
pub fn render(p: &[u8; 4096]) -> String {
    // PANICS: callers pass offsets from `off`, all below off::END <= 4096 - 8.
    let g32 = |o: usize| u32::from_le_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
    let g64 = |o: usize| u64::from(g32(o)) | (u64::from(g32(o + 4)) << 32);
    format!(
        "kaslr_slide={:#x} text={:#x} init_task={:#x} page_offset_base={:#x} vmemmap_base={:#x} \
         vmalloc_base={:#x} phys_base={:#x} levels={} task_struct.size={} .tasks={} .pid={} .tgid={} \
         .comm={} .mm={} .active_mm={} mm_struct.pgd={} page.size={} .flags={} .page_type={} \
         .private={} buddy=(page_type&{:#x})=={:#x} init_top_pgt={:#x}",
        g64(off::KASLR_SLIDE),
        g64(off::TEXT),
        g64(off::INIT_TASK),
        g64(off::PAGE_OFFSET_BASE),
        g64(off::VMEMMAP_BASE),
        g64(off::VMALLOC_BASE),
        g64(off::PHYS_BASE),
        g32(off::PGTABLE_LEVELS),
        g32(off::TASK_SIZE),
        g32(off::TASK_TASKS),
        g32(off::TASK_PID),
        g32(off::TASK_TGID),
        g32(off::TASK_COMM),
        g32(off::TASK_MM),
        g32(off::TASK_ACTIVE_MM),
        g32(off::MM_PGD),
        g32(off::PAGE_SIZE),
        g32(off::PAGE_FLAGS),
        g32(off::PAGE_TYPE),
        g32(off::PAGE_PRIVATE),
        g32(off::BUDDY_MASK),
        g32(off::BUDDY_VALUE),
        g64(off::INIT_TOP_PGT),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn buddy_rule_by_release() {
        assert_eq!(
            buddy_rule("6.1.0-56-amd64").unwrap(),
            (0xf000_0080, 0xf000_0000)
        );
        assert!(buddy_rule("6.12.1").is_err());
        assert!(buddy_rule("garbage").is_err());
    }
}
