//! afl.rs entry point of the `twohost` target; the harness is
//! `depmig_fuzz::twohost::run`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = depmig_fuzz::twohost::run(data);
    });
}
