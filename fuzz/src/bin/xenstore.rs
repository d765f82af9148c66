//! afl.rs entry point of the `xenstore` target; the harness is
//! `depmig_fuzz::xenstore::run`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = depmig_fuzz::xenstore::run(data);
    });
}
