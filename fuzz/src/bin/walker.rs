//! afl.rs entry point of the `walker` target; the harness is
//! `depmig_fuzz::walker::run`.

fn main() {
    // Before the fork server: children start with the guests built.
    depmig_fuzz::walker::prepare();
    afl::fuzz!(|data: &[u8]| {
        let _ = depmig_fuzz::walker::run(data);
    });
}
