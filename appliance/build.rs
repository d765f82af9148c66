//! Build script of the appliance image: links it as a freestanding PVH ELF.
//!
//! The arguments go to the binary only (`rustc-link-arg-bins`): a
//! workspace-wide flag would also reach build scripts and proc-macros, which
//! share the host target triple.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let script = format!("{dir}/linker/appliance.ld");
    println!("cargo::rerun-if-changed={script}");
    println!("cargo::rerun-if-changed=build.rs");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,noexecstack",
        "-Wl,-z,max-page-size=4096",
        "-Wl,--gc-sections",
        &format!("-Wl,-T,{script}"),
    ] {
        println!("cargo::rustc-link-arg-bins={arg}");
    }
}
