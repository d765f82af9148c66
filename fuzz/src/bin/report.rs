//! afl.rs entry point of the `report` target; the harness is
//! `depmig_fuzz::report::run`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let _ = depmig_fuzz::report::run(data);
    });
}
