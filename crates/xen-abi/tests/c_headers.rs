//! Cross-checks this crate's layouts and constants against Xen's C headers.
//!
//! Generates a C file of `_Static_assert`s from the Rust values and compiles
//! it against a release's public headers. A mismatch fails compilation and
//! so the test. The installed headers (Debian `libxen-dev`, which `test.sh`
//! installs) are 4.17's and always checked; the other releases in
//! `domctl::RELEASES` are checked against a Xen source tree when an
//! environment variable names its `xen/include` directory
//! (`DEPMIG_XEN420_INCLUDE=/tmp/xen-4.20.4/xen/include`, see
//! [`RELEASE_TREES`]), and say they were skipped otherwise.

use std::fmt::Write as _;
use std::io::Write as _;
use std::mem::{offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use xen_abi::version::Version;
use xen_abi::*;

struct Checks(String);

impl Checks {
    fn size(&mut self, c_type: &str, size: usize) {
        writeln!(
            self.0,
            "_Static_assert(sizeof({c_type}) == {size}, \"size of {c_type}\");"
        )
        .unwrap();
    }
    fn field(&mut self, c_type: &str, c_field: &str, off: usize) {
        writeln!(
            self.0,
            "_Static_assert(offsetof({c_type}, {c_field}) == {off}, \"offset of {c_type}.{c_field}\");"
        )
        .unwrap();
    }
    fn constant(&mut self, c_expr: &str, value: impl std::fmt::Display) {
        writeln!(
            self.0,
            "_Static_assert(({c_expr}) == ({value}), \"value of {c_expr}\");"
        )
        .unwrap();
    }
}

macro_rules! layout {
    ($c:ident, $c_type:literal, $ty:ty { $($field:ident => $c_field:literal),* $(,)? }) => {
        $c.size($c_type, size_of::<$ty>());
        fields!($c, $c_type, $ty { $($field => $c_field),* });
    };
}

/// The fields' offsets alone, for a Rust struct that is a prefix of the C one.
macro_rules! fields {
    ($c:ident, $c_type:literal, $ty:ty { $($field:ident => $c_field:literal),* $(,)? }) => {
        $( $c.field($c_type, $c_field, offset_of!($ty, $field)); )*
    };
}

const fn release(major: u16, minor: u16) -> Version {
    Version { major, minor }
}

/// The release of the installed headers (bookworm's libxen-dev).
const INSTALLED: Version = release(4, 17);

/// The other supported releases and the variable naming a source tree's
/// `xen/include` directory (the one holding `public/`) for each.
const RELEASE_TREES: [(Version, &str); 4] = [
    (release(4, 19), "DEPMIG_XEN419_INCLUDE"),
    (release(4, 20), "DEPMIG_XEN420_INCLUDE"),
    (release(4, 21), "DEPMIG_XEN421_INCLUDE"),
    (release(4, 22), "DEPMIG_XEN422_INCLUDE"),
];

#[test]
fn layouts_and_constants_match_xen_public_headers() {
    let include = Path::new("/usr/include/xen/xen.h");
    assert!(
        include.exists(),
        "Xen's public headers are missing: install libxen-dev (test.sh does)"
    );
    compile(&checks(INSTALLED), None, "installed");
}

#[test]
fn every_supported_release_has_a_header_check() {
    let mut checked: Vec<Version> = RELEASE_TREES.iter().map(|&(v, _)| v).collect();
    checked.push(INSTALLED);
    checked.sort();
    let supported: Vec<Version> = domctl::RELEASES.iter().map(|r| r.version).collect();
    assert_eq!(checked, supported);
}

#[test]
fn layouts_and_constants_match_xen_4_19_headers() {
    check_release_tree(0);
}

#[test]
fn layouts_and_constants_match_xen_4_20_headers() {
    check_release_tree(1);
}

#[test]
fn layouts_and_constants_match_xen_4_21_headers() {
    check_release_tree(2);
}

#[test]
fn layouts_and_constants_match_xen_4_22_headers() {
    check_release_tree(3);
}

/// Checks `RELEASE_TREES[i]` against the tree its variable names, or says
/// that it was skipped when the variable is unset.
fn check_release_tree(i: usize) {
    let (release, var) = RELEASE_TREES[i];
    let Some(dir) = std::env::var_os(var) else {
        // Straight to the stream: the test harness captures `eprintln!` of
        // passing tests, and a skip nobody sees would read as a pass.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: Xen {release} header check ({var} is not set; point it at a Xen {release} \
             source tree's xen/include directory to run it)"
        );
        return;
    };
    let dir = PathBuf::from(dir);
    compile(&checks(release), Some(&dir), &format!("{release}"));
}

/// The C source asserting every layout and constant for `release`.
fn checks(release: Version) -> String {
    let interfaces = domctl::interfaces_for(release).expect("a supported release");
    let mut c = Checks(String::from(
        "#define __XEN_TOOLS__ 1\n#include <stddef.h>\n#include <stdint.h>\n\
         #include <xen/xen.h>\n#include <xen/sched.h>\n#include <xen/event_channel.h>\n\
         #include <xen/memory.h>\n#include <xen/grant_table.h>\n#include <xen/hvm/hvm_op.h>\n\
         #include <xen/hvm/params.h>\n#include <xen/arch-x86/hvm/start_info.h>\n\
         #include <xen/io/console.h>\n#include <xen/version.h>\n#include <xen/domctl.h>\n\
         #include <xen/sysctl.h>\n#include <xen/errno.h>\n#include <xen/hvm/save.h>\n",
    ));

    use event_channel as ev;
    use grant_table as gt;
    use hypercall as hc;
    use memory as mm;

    for (name, v) in [
        ("__HYPERVISOR_set_timer_op", hc::SET_TIMER_OP),
        ("__HYPERVISOR_memory_op", hc::MEMORY_OP),
        ("__HYPERVISOR_multicall", hc::MULTICALL),
        ("__HYPERVISOR_xen_version", hc::XEN_VERSION),
        ("__HYPERVISOR_console_io", hc::CONSOLE_IO),
        ("CONSOLEIO_write", console::CONSOLEIO_WRITE),
        ("__HYPERVISOR_grant_table_op", hc::GRANT_TABLE_OP),
        ("__HYPERVISOR_vcpu_op", hc::VCPU_OP),
        ("__HYPERVISOR_sched_op", hc::SCHED_OP),
        ("__HYPERVISOR_event_channel_op", hc::EVENT_CHANNEL_OP),
        ("__HYPERVISOR_hvm_op", hc::HVM_OP),
        ("__HYPERVISOR_sysctl", hc::SYSCTL),
        ("__HYPERVISOR_domctl", hc::DOMCTL),
        ("XENVER_version", version::XENVER_VERSION),
        ("XENVER_extraversion", version::XENVER_EXTRAVERSION),
        ("XENVER_get_features", version::XENVER_GET_FEATURES),
        ("SCHEDOP_yield", sched::SCHEDOP_YIELD),
        ("SCHEDOP_block", sched::SCHEDOP_BLOCK),
        ("SCHEDOP_shutdown", sched::SCHEDOP_SHUTDOWN),
        ("SCHEDOP_poll", sched::SCHEDOP_POLL),
        ("SHUTDOWN_poweroff", sched::SHUTDOWN_POWEROFF),
        ("SHUTDOWN_reboot", sched::SHUTDOWN_REBOOT),
        ("SHUTDOWN_suspend", sched::SHUTDOWN_SUSPEND),
        ("SHUTDOWN_crash", sched::SHUTDOWN_CRASH),
        ("EVTCHNOP_bind_interdomain", ev::EVTCHNOP_BIND_INTERDOMAIN),
        ("EVTCHNOP_bind_virq", ev::EVTCHNOP_BIND_VIRQ),
        ("EVTCHNOP_close", ev::EVTCHNOP_CLOSE),
        ("EVTCHNOP_send", ev::EVTCHNOP_SEND),
        ("EVTCHNOP_alloc_unbound", ev::EVTCHNOP_ALLOC_UNBOUND),
        ("EVTCHNOP_unmask", ev::EVTCHNOP_UNMASK),
        ("VIRQ_TIMER", ev::VIRQ_TIMER),
        (
            "XENMEM_decrease_reservation",
            mm::XENMEM_DECREASE_RESERVATION,
        ),
        ("XENMEM_populate_physmap", mm::XENMEM_POPULATE_PHYSMAP),
        ("XENMEM_add_to_physmap", mm::XENMEM_ADD_TO_PHYSMAP),
        ("XENMEM_remove_from_physmap", mm::XENMEM_REMOVE_FROM_PHYSMAP),
        (
            "XENMEM_add_to_physmap_batch",
            mm::XENMEM_ADD_TO_PHYSMAP_BATCH,
        ),
        ("XENMAPSPACE_shared_info", mm::XENMAPSPACE_SHARED_INFO),
        ("XENMAPSPACE_grant_table", mm::XENMAPSPACE_GRANT_TABLE),
        ("XENMAPSPACE_gmfn_foreign", mm::XENMAPSPACE_GMFN_FOREIGN),
        ("GNTTABOP_map_grant_ref", gt::GNTTABOP_MAP_GRANT_REF),
        ("GNTTABOP_unmap_grant_ref", gt::GNTTABOP_UNMAP_GRANT_REF),
        ("GNTTABOP_query_size", gt::GNTTABOP_QUERY_SIZE),
        ("GNTTABOP_get_version", gt::GNTTABOP_GET_VERSION),
        ("GNTMAP_host_map", gt::GNTMAP_HOST_MAP),
        ("GNTMAP_readonly", gt::GNTMAP_READONLY),
        ("HVMOP_set_param", hvm::HVMOP_SET_PARAM),
        ("HVMOP_get_param", hvm::HVMOP_GET_PARAM),
        ("HVM_PARAM_CALLBACK_IRQ", hvm::HVM_PARAM_CALLBACK_IRQ),
        ("HVM_PARAM_STORE_PFN", hvm::HVM_PARAM_STORE_PFN),
        ("HVM_PARAM_STORE_EVTCHN", hvm::HVM_PARAM_STORE_EVTCHN),
        ("HVM_PARAM_CONSOLE_PFN", hvm::HVM_PARAM_CONSOLE_PFN),
        ("HVM_PARAM_CONSOLE_EVTCHN", hvm::HVM_PARAM_CONSOLE_EVTCHN),
        ("XEN_HVM_START_MAGIC_VALUE", start_info::START_MAGIC),
        ("XEN_HVM_MEMMAP_TYPE_RAM", start_info::MEMMAP_TYPE_RAM),
        ("XEN_DOMCTL_INTERFACE_VERSION", interfaces.domctl),
        ("XEN_SYSCTL_INTERFACE_VERSION", interfaces.sysctl),
    ] {
        c.constant(name, v);
    }
    for (name, v) in [
        ("GTF_invalid", gt::GTF_INVALID),
        ("GTF_permit_access", gt::GTF_PERMIT_ACCESS),
        ("GTF_type_mask", gt::GTF_TYPE_MASK),
        ("GTF_readonly", gt::GTF_READONLY),
        ("GTF_reading", gt::GTF_READING),
        ("GTF_writing", gt::GTF_WRITING),
    ] {
        c.constant(name, v);
    }
    c.constant("GNTST_okay", gt::GNTST_OKAY);
    c.constant(
        "HVM_PARAM_CALLBACK_TYPE_VECTOR",
        hvm::HVM_PARAM_CALLBACK_TYPE_VECTOR,
    );
    c.constant("DOMID_SELF", DOMID_SELF);
    c.constant("DOMID_FIRST_RESERVED", DOMID_FIRST_RESERVED);
    c.constant("XEN_LEGACY_MAX_VCPUS", shared_info::LEGACY_MAX_VCPUS);
    c.constant(
        "sizeof(xen_extraversion_t)",
        size_of::<version::ExtraVersion>(),
    );
    c.constant(
        "sizeof(((struct shared_info *)0)->evtchn_pending) * 8",
        ev::EVTCHN_2L_NR_PORTS,
    );
    for (name, e) in [
        ("XEN_EPERM", errno::EPERM),
        ("XEN_ENOENT", errno::ENOENT),
        ("XEN_EAGAIN", errno::EAGAIN),
        ("XEN_ENOMEM", errno::ENOMEM),
        ("XEN_EACCES", errno::EACCES),
        ("XEN_EFAULT", errno::EFAULT),
        ("XEN_EBUSY", errno::EBUSY),
        ("XEN_EEXIST", errno::EEXIST),
        ("XEN_EINVAL", errno::EINVAL),
        ("XEN_ENOSPC", errno::ENOSPC),
        ("XEN_ENOSYS", errno::ENOSYS),
        ("XEN_ETIMEDOUT", errno::ETIMEDOUT),
        ("XEN_EOPNOTSUPP", errno::EOPNOTSUPP),
    ] {
        c.constant(name, e.0);
    }

    layout!(c, "struct sched_shutdown", sched::SchedShutdown { reason => "reason" });
    layout!(c, "struct sched_poll", sched::SchedPoll {
        ports => "ports", nr_ports => "nr_ports", timeout => "timeout" });
    layout!(c, "struct evtchn_alloc_unbound", ev::AllocUnbound {
        dom => "dom", remote_dom => "remote_dom", port => "port" });
    layout!(c, "struct evtchn_bind_interdomain", ev::BindInterdomain {
        remote_dom => "remote_dom", remote_port => "remote_port", local_port => "local_port" });
    layout!(c, "struct evtchn_bind_virq", ev::BindVirq { virq => "virq", vcpu => "vcpu", port => "port" });
    layout!(c, "struct evtchn_send", ev::PortOp { port => "port" });
    layout!(c, "struct evtchn_close", ev::PortOp { port => "port" });
    layout!(c, "struct evtchn_unmask", ev::PortOp { port => "port" });
    layout!(c, "struct xen_add_to_physmap", mm::AddToPhysmap {
        domid => "domid", size => "size", space => "space", idx => "idx", gpfn => "gpfn" });
    layout!(c, "struct xen_remove_from_physmap", mm::RemoveFromPhysmap { domid => "domid", gpfn => "gpfn" });
    layout!(c, "struct multicall_entry", hc::MulticallEntry { op => "op", result => "result", args => "args" });
    layout!(c, "struct xen_memory_reservation", mm::MemoryReservation {
        extent_start => "extent_start", nr_extents => "nr_extents", extent_order => "extent_order",
        mem_flags => "mem_flags", domid => "domid" });
    layout!(c, "struct xen_add_to_physmap_batch", mm::AddToPhysmapBatch {
        domid => "domid", space => "space", size => "size", foreign_domid => "u.foreign_domid",
        idxs => "idxs", gpfns => "gpfns", errs => "errs" });
    layout!(c, "struct grant_entry_v1", gt::GrantEntryV1 { flags => "flags", domid => "domid", frame => "frame" });
    layout!(c, "struct gnttab_map_grant_ref", gt::MapGrantRef {
        host_addr => "host_addr", flags => "flags", gref => "ref", dom => "dom", status => "status",
        handle => "handle", dev_bus_addr => "dev_bus_addr" });
    layout!(c, "struct gnttab_unmap_grant_ref", gt::UnmapGrantRef {
        host_addr => "host_addr", dev_bus_addr => "dev_bus_addr", handle => "handle", status => "status" });
    layout!(c, "struct gnttab_query_size", gt::QuerySize {
        dom => "dom", nr_frames => "nr_frames", max_nr_frames => "max_nr_frames", status => "status" });
    layout!(c, "struct gnttab_get_version", gt::GetVersion { dom => "dom", version => "version" });
    layout!(c, "struct xen_hvm_param", hvm::HvmParam { domid => "domid", index => "index", value => "value" });
    layout!(c, "struct hvm_start_info", start_info::StartInfo {
        magic => "magic", version => "version", flags => "flags", nr_modules => "nr_modules",
        modlist_paddr => "modlist_paddr", cmdline_paddr => "cmdline_paddr", rsdp_paddr => "rsdp_paddr",
        memmap_paddr => "memmap_paddr", memmap_entries => "memmap_entries", reserved => "reserved" });
    layout!(c, "struct hvm_memmap_table_entry", start_info::MemmapEntry {
        addr => "addr", size => "size", kind => "type", reserved => "reserved" });
    layout!(c, "struct vcpu_time_info", shared_info::VcpuTimeInfo {
        version => "version", tsc_timestamp => "tsc_timestamp", system_time => "system_time",
        tsc_to_system_mul => "tsc_to_system_mul", tsc_shift => "tsc_shift", flags => "flags" });
    layout!(c, "struct vcpu_info", shared_info::VcpuInfo {
        evtchn_upcall_pending => "evtchn_upcall_pending", evtchn_upcall_mask => "evtchn_upcall_mask",
        evtchn_pending_sel => "evtchn_pending_sel", arch => "arch", time => "time" });
    layout!(c, "struct shared_info", shared_info::SharedInfo {
        vcpu_info => "vcpu_info", evtchn_pending => "evtchn_pending", evtchn_mask => "evtchn_mask",
        wc_version => "wc_version", wc_sec => "wc_sec", wc_nsec => "wc_nsec",
        wc_sec_hi => "wc_sec_hi", arch => "arch" });
    fields!(c, "struct xencons_interface", console::ConsoleInterface {
        input => "in", output => "out", in_cons => "in_cons", in_prod => "in_prod",
        out_cons => "out_cons", out_prod => "out_prod" });
    let cons_size = size_of::<console::ConsoleInterface>();
    if release >= console::CONNECTION_SINCE {
        c.field("struct xencons_interface", "connection", cons_size);
    } else {
        c.size("struct xencons_interface", cons_size);
    }
    layout!(c, "xen_feature_info_t", version::FeatureInfo { submap_idx => "submap_idx", submap => "submap" });
    layout!(c, "struct xen_domctl", domctl::Domctl {
        cmd => "cmd", interface_version => "interface_version", domain => "domain", payload => "u" });
    c.constant(
        "sizeof(((struct xen_domctl *)0)->u)",
        domctl::DOMCTL_PAYLOAD,
    );
    layout!(c, "struct xen_domctl_getdomaininfo", domctl::GetDomainInfo {
        domain => "domain", flags => "flags", tot_pages => "tot_pages", max_pages => "max_pages",
        outstanding_pages => "outstanding_pages", shr_pages => "shr_pages", paged_pages => "paged_pages",
        shared_info_frame => "shared_info_frame", cpu_time => "cpu_time",
        nr_online_vcpus => "nr_online_vcpus", max_vcpu_id => "max_vcpu_id", ssidref => "ssidref",
        handle => "handle", cpupool => "cpupool", gpaddr_bits => "gpaddr_bits",
        emulation_flags => "arch_config.emulation_flags", misc_flags => "arch_config.misc_flags" });
    layout!(c, "struct xen_domctl_shadow_op", domctl::ShadowOp {
        op => "op", mode => "mode", mb => "mb", dirty_bitmap => "dirty_bitmap", pages => "pages",
        fault_count => "stats.fault_count", dirty_count => "stats.dirty_count" });
    layout!(c, "struct xen_domctl_hvmcontext", domctl::HvmContext { size => "size", buffer => "buffer" });
    for (name, v) in [
        ("XEN_DOMCTL_pausedomain", domctl::XEN_DOMCTL_PAUSEDOMAIN),
        ("XEN_DOMCTL_unpausedomain", domctl::XEN_DOMCTL_UNPAUSEDOMAIN),
        ("XEN_DOMCTL_getdomaininfo", domctl::XEN_DOMCTL_GETDOMAININFO),
        ("XEN_DOMCTL_shadow_op", domctl::XEN_DOMCTL_SHADOW_OP),
        ("XEN_DOMCTL_gethvmcontext", domctl::XEN_DOMCTL_GETHVMCONTEXT),
        ("XEN_DOMCTL_sethvmcontext", domctl::XEN_DOMCTL_SETHVMCONTEXT),
        ("XEN_DOMCTL_SHADOW_OP_OFF", domctl::SHADOW_OP_OFF),
        ("XEN_DOMCTL_SHADOW_OP_CLEAN", domctl::SHADOW_OP_CLEAN),
        ("XEN_DOMCTL_SHADOW_OP_PEEK", domctl::SHADOW_OP_PEEK),
        ("XEN_DOMCTL_SHADOW_OP_ENABLE", domctl::SHADOW_OP_ENABLE),
        (
            "XEN_DOMCTL_SHADOW_ENABLE_LOG_DIRTY",
            domctl::SHADOW_ENABLE_LOG_DIRTY,
        ),
        (
            "XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL",
            domctl::SHADOW_LOGDIRTY_FINAL,
        ),
        ("XEN_DOMINF_shutdown", domctl::DOMINF_SHUTDOWN),
        ("XEN_DOMINF_paused", domctl::DOMINF_PAUSED),
        ("XEN_DOMINF_hvm_guest", domctl::DOMINF_HVM_GUEST),
        ("XEN_DOMCTL_resumedomain", domctl::XEN_DOMCTL_RESUMEDOMAIN),
        ("XEN_DOMCTL_gettscinfo", domctl::XEN_DOMCTL_GETTSCINFO),
        ("XEN_DOMCTL_settscinfo", domctl::XEN_DOMCTL_SETTSCINFO),
        ("XEN_DOMINF_dying", domctl::DOMINF_DYING),
        ("XEN_DOMINF_blocked", domctl::DOMINF_BLOCKED),
        ("XEN_DOMINF_running", domctl::DOMINF_RUNNING),
        ("XEN_DOMINF_shutdownshift", domctl::DOMINF_SHUTDOWN_SHIFT),
        ("XEN_DOMINF_shutdownmask", domctl::DOMINF_SHUTDOWN_MASK),
        ("XENMEM_maximum_gpfn", memory::XENMEM_MAXIMUM_GPFN),
        ("HVM_PARAM_TIMER_MODE", hvm::HVM_PARAM_TIMER_MODE),
        ("HVM_PARAM_IDENT_PT", hvm::HVM_PARAM_IDENT_PT),
        (
            "HVM_PARAM_ACPI_IOPORTS_LOCATION",
            hvm::HVM_PARAM_ACPI_IOPORTS_LOCATION,
        ),
        ("HVM_PARAM_PAGING_RING_PFN", hvm::HVM_PARAM_PAGING_RING_PFN),
        (
            "HVM_PARAM_MONITOR_RING_PFN",
            hvm::HVM_PARAM_MONITOR_RING_PFN,
        ),
        (
            "HVM_PARAM_SHARING_RING_PFN",
            hvm::HVM_PARAM_SHARING_RING_PFN,
        ),
        (
            "HVM_PARAM_IOREQ_SERVER_PFN",
            hvm::HVM_PARAM_IOREQ_SERVER_PFN,
        ),
        (
            "HVM_PARAM_NR_IOREQ_SERVER_PAGES",
            hvm::HVM_PARAM_NR_IOREQ_SERVER_PAGES,
        ),
        (
            "HVM_PARAM_VM_GENERATION_ID_ADDR",
            hvm::HVM_PARAM_VM_GENERATION_ID_ADDR,
        ),
        ("HVM_PARAM_X87_FIP_WIDTH", hvm::HVM_PARAM_X87_FIP_WIDTH),
        ("HVM_PARAM_VM86_TSS_SIZED", hvm::HVM_PARAM_VM86_TSS_SIZED),
        ("HVM_PARAM_MCA_CAP", hvm::HVM_PARAM_MCA_CAP),
        ("HVM_FILE_MAGIC", hvm_save::HVM_FILE_MAGIC),
        ("HVM_FILE_VERSION", hvm_save::HVM_FILE_VERSION),
    ] {
        c.constant(name, v);
    }
    layout!(c, "struct xen_domctl_tsc_info", domctl::TscInfo {
        tsc_mode => "tsc_mode", gtsc_khz => "gtsc_khz", incarnation => "incarnation", pad => "pad",
        elapsed_nsec => "elapsed_nsec" });
    layout!(c, "struct hvm_save_descriptor", hvm_save::SaveDescriptor {
        typecode => "typecode", instance => "instance", length => "length" });
    layout!(c, "struct hvm_save_header", hvm_save::SaveHeader {
        magic => "magic", version => "version", changeset => "changeset", cpuid => "cpuid",
        gtsc_khz => "gtsc_khz" });
    for (name, v) in [
        ("HVM_SAVE_CODE(END)", hvm_save::CODE_END),
        ("HVM_SAVE_CODE(HEADER)", hvm_save::CODE_HEADER),
        ("HVM_SAVE_CODE(CPU)", hvm_save::CODE_CPU),
        ("HVM_SAVE_CODE(LAPIC)", hvm_save::CODE_LAPIC),
        ("HVM_SAVE_CODE(LAPIC_REGS)", hvm_save::CODE_LAPIC_REGS),
        ("HVM_SAVE_CODE(MTRR)", hvm_save::CODE_MTRR),
        ("HVM_SAVE_CODE_MAX", hvm_save::CODE_MAX),
    ] {
        c.constant(name, v);
    }
    for (name, v) in [
        ("sizeof(struct hvm_hw_cpu)", hvm_save::HW_CPU_SIZE),
        (
            "sizeof(struct hvm_hw_cpu_compat)",
            hvm_save::HW_CPU_COMPAT_SIZE,
        ),
        ("offsetof(struct hvm_hw_cpu, rax)", hvm_save::HW_CPU_RAX),
        (
            "offsetof(struct hvm_hw_cpu_compat, rax)",
            hvm_save::HW_CPU_RAX,
        ),
        ("offsetof(struct hvm_hw_cpu, rip)", hvm_save::HW_CPU_RIP),
        (
            "offsetof(struct hvm_hw_cpu, rflags)",
            hvm_save::HW_CPU_RFLAGS,
        ),
        ("offsetof(struct hvm_hw_cpu, cr3)", hvm_save::HW_CPU_CR3),
    ] {
        c.constant(name, v);
    }

    c.0
}

/// Compiles `source` (syntax and static assertions only) with the system C
/// compiler, failing the test with the compiler's messages. With `tree`
/// (a Xen source tree's `xen/include`, or a directory holding `xen/xen.h`)
/// the `<xen/...>` headers come from there, and the test fails if any of
/// them came from the installed ones instead. `tag` keeps concurrent
/// tests' scratch directories apart.
fn compile(source: &str, tree: Option<&Path>, tag: &str) {
    let dir = std::env::temp_dir().join(format!("xen-abi-check-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("check.c");
    std::fs::write(&file, source).unwrap();
    let mut cc = Command::new("cc");
    cc.args(["-std=gnu11", "-fsyntax-only", "-Werror"]);
    let root = tree.map(|t| include_root(t, &dir));
    if let Some(root) = &root {
        // -H lists every header read, to check where each came from.
        cc.arg("-I").arg(root).arg("-H");
    }
    let out = cc.arg(&file).output().expect("running cc");
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The compiler's messages without -H's list of headers.
    let messages: Vec<&str> = stderr
        .lines()
        .take_while(|l| !l.starts_with("Multiple include guards"))
        .filter(|l| !l.starts_with('.'))
        .collect();
    assert!(
        out.status.success(),
        "C header cross-check failed:\n{}",
        messages.join("\n")
    );
    if let Some(root) = root {
        let stray: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with('.'))
            .map(|l| l.trim_start_matches('.').trim_start())
            .filter(|h| h.contains("/xen/") && !Path::new(h).starts_with(&root))
            .collect();
        assert!(
            stray.is_empty(),
            "headers read from outside {}: {stray:?}",
            root.display()
        );
    }
}

/// The directory to pass with `-I` so that `<xen/xen.h>` is `tree`'s: a
/// source tree keeps the public headers in `xen/include/public`, which a
/// link named `xen` in `scratch` stands for; an installed layout
/// (`tree/xen/xen.h`) is used as it is.
fn include_root(tree: &Path, scratch: &Path) -> PathBuf {
    let public = tree.join("public");
    if public.join("xen.h").is_file() {
        let root = scratch.join("include");
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(public.canonicalize().unwrap(), root.join("xen")).unwrap();
        root
    } else {
        assert!(
            tree.join("xen").join("xen.h").is_file(),
            "{} holds neither public/xen.h (a Xen tree's xen/include) nor xen/xen.h",
            tree.display()
        );
        tree.to_path_buf()
    }
}
