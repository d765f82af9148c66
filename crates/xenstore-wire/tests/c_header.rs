//! Cross-checks the ring layout and message constants against `xs_wire.h`
//! (Debian `libxen-dev`, installed by `test.sh`).

use std::fmt::Write as _;
use xenstore_wire::ring::*;
use xenstore_wire::*;

#[test]
fn constants_match_xs_wire_h() {
    assert!(
        std::path::Path::new("/usr/include/xen/io/xs_wire.h").exists(),
        "Xen's public headers are missing: install libxen-dev (test.sh does)"
    );
    let mut c =
        String::from("#include <stddef.h>\n#include <stdint.h>\n#include <xen/io/xs_wire.h>\n");
    let mut check = |expr: &str, v: usize| {
        writeln!(c, "_Static_assert(({expr}) == {v}, \"{expr}\");").unwrap();
    };
    check("XENSTORE_RING_SIZE", RING_SIZE);
    check("XENSTORE_PAYLOAD_MAX", PAYLOAD_MAX);
    check("sizeof(struct xsd_sockmsg)", HEADER_LEN);
    check("sizeof(struct xenstore_domain_interface)", INTERFACE_SIZE);
    let s = "struct xenstore_domain_interface";
    for (field, off) in [
        ("req", REQ_OFFSET),
        ("rsp", RSP_OFFSET),
        ("req_cons", REQ_CONS_OFFSET),
        ("req_prod", REQ_PROD_OFFSET),
        ("rsp_cons", RSP_CONS_OFFSET),
        ("rsp_prod", RSP_PROD_OFFSET),
        ("server_features", SERVER_FEATURES_OFFSET),
        ("connection", CONNECTION_OFFSET),
        ("error", ERROR_OFFSET),
    ] {
        check(&format!("offsetof({s}, {field})"), off);
    }
    for (name, ty) in [
        ("XS_DIRECTORY", MsgType::Directory),
        ("XS_READ", MsgType::Read),
        ("XS_WATCH", MsgType::Watch),
        ("XS_UNWATCH", MsgType::Unwatch),
        ("XS_TRANSACTION_START", MsgType::TransactionStart),
        ("XS_TRANSACTION_END", MsgType::TransactionEnd),
        ("XS_GET_DOMAIN_PATH", MsgType::GetDomainPath),
        ("XS_WRITE", MsgType::Write),
        ("XS_MKDIR", MsgType::Mkdir),
        ("XS_RM", MsgType::Rm),
        ("XS_WATCH_EVENT", MsgType::WatchEvent),
        ("XS_ERROR", MsgType::Error),
        ("XS_RESET_WATCHES", MsgType::ResetWatches),
        ("XS_DIRECTORY_PART", MsgType::DirectoryPart),
    ] {
        check(name, ty as usize);
        assert_eq!(MsgType::from_raw(ty as u32), Some(ty));
    }
    let dir = std::env::temp_dir().join(format!("xs-wire-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("check.c");
    std::fs::write(&file, &c).unwrap();
    let out = std::process::Command::new("cc")
        .args(["-std=gnu11", "-fsyntax-only", "-Werror"])
        .arg(&file)
        .output()
        .expect("running cc");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "xs_wire.h cross-check failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
