//! afl.rs entry point of the `verify` target; the harness is
//! `depmig_fuzz::verify::run`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = depmig_fuzz::verify::run(data);
    });
}
